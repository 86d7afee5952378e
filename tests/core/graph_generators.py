"""Hypothesis generators of spec version 2 files (graphs) for tests/core/test_spec_fuzz.py.

`valid_graphs` writes random DAGs that must compile: one to three inputs (sequences of
floats or ids, fixed or variable length, static features, one id), then layers that
each read values already there (merges of values on one time axis, attention with or
without a query, repeat_vector with n or like, normalization on an input, recurrent
layers started from an earlier one's state), then one to three outputs with a head
that fits their loss, and sometimes a feedback output. It keeps, per value, what the
graph rules keep (`rnnc.graph`): rank, features, time axis, lengths. `mutated_graphs`
breaks those and the ready graphs of specs/graphs/ at random, with the mutations of
spec_generators.py plus graph ones (names swapped, layers moved, lists and states
rewired).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from hypothesis import strategies as st
from spec_generators import HEADS, KNOWN_WORDS, _mutate, _schema_keys, _values, rate

from rnnc import ir
from rnnc.schema import load_schema

GRAPH_SPECS = sorted((Path(__file__).resolve().parents[2] / "specs" / "graphs").glob("*.yaml"))
GRAPH_BASES = {spec.stem: yaml.safe_load(spec.read_text()) for spec in GRAPH_SPECS}
NAMES = ["in0", "in1", "in2", *(f"n{i}" for i in range(12)), "enc", "dec"]
GRAPH_WORDS = sorted({*KNOWN_WORDS, *ir.ALL_KINDS, *NAMES, *(f"{n}.state" for n in NAMES[3:]), "dot", "general", "additive"})
GRAPH_KEYS = sorted(_schema_keys(load_schema(2)) - {"$schema"})
graph_values = _values(GRAPH_KEYS, GRAPH_WORDS)
small = st.integers(min_value=1, max_value=5)


@dataclass
class Val:
    """What the generator knows of a value, as rnnc.graph does."""

    key: str
    rank: str  # "seq", "vec", "ids" (int64 [T]) or "id" (int64 [])
    features: int = 0  # the last axis (seq, vec); the vocabulary bound for ids
    time: str | None = None
    lengths: str | None = None
    steps: int | None = None  # fixed steps of a sequence; None: variable
    recurrent: tuple[str, int, int] | None = None  # (kind, units, directions) of a recurrent layer
    is_input: bool = False


@st.composite
def valid_graphs(draw: st.DrawFn) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    vals: list[Val] = []
    for i in range(draw(st.integers(1, 3))):
        name, steps = f"in{i}", draw(st.none() | st.integers(2, 8))
        match draw(st.sampled_from(["seq", "seq", "vec", "ids", "id"])):
            case "seq":
                features = draw(small)
                inputs[name] = {"shape": [steps, features]}
                vals.append(Val(name, "seq", features, name, name if steps is None else None, steps, is_input=True))
            case "vec":
                features = draw(small)
                inputs[name] = {"shape": [features]}
                vals.append(Val(name, "vec", features, is_input=True))
            case "ids":
                inputs[name] = {"shape": [steps], "dtype": "int64"}
                vals.append(Val(name, "ids", 0, name, name if steps is None else None, steps, is_input=True))
            case "id":
                inputs[name] = {"shape": [], "dtype": "int64"}
                vals.append(Val(name, "id", is_input=True))
    layers: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 6))):
        _add_layer(draw, layers, vals)
    floats = [v for v in vals if v.rank in ("seq", "vec")]
    if not floats:  # ids alone: an embedding first
        _embedding(draw, layers, vals, draw(st.sampled_from([v for v in vals if v.rank in ("ids", "id")])))
        floats = [vals[-1]]
    outputs = {}
    for j in range(draw(st.integers(1, 3))):
        loss = draw(st.sampled_from(ir.LOSSES))
        units, activation, metrics = HEADS[loss]
        name = f"out{j}"
        layers.append({"name": name, "type": "dense", "units": units, "activation": activation,
                       "input": draw(st.sampled_from([v.key for v in vals if v.rank in ("seq", "vec")]))})
        outputs[name] = {"loss": loss, "metrics": draw(st.lists(st.sampled_from(metrics), unique=True, max_size=2)),
                         **draw(st.fixed_dictionaries({}, optional={"loss_weight": st.sampled_from([0.0, 0.5, 2.0])}))}
    _maybe_feedback(draw, layers, vals, inputs, outputs)
    spec: dict[str, Any] = {"rnnc": 2, "name": "fuzz-graph", "inputs": inputs, "layers": layers, "outputs": outputs,
                            "optimizer": draw(st.sampled_from(ir.OPTIMIZERS))}
    names = _monitors(outputs)
    if draw(st.booleans()):
        spec["training"] = {"validation_split": 0.2, "early_stopping": {"monitor": draw(st.sampled_from([*names, *(f"val_{n}" for n in names)]))}}
    jsonschema.Draft202012Validator(load_schema(2)).validate(spec)  # the generator's own promise
    return spec


def _monitors(outputs: dict[str, Any]) -> list[str]:
    if len(outputs) == 1:
        return ["loss", *next(iter(outputs.values()))["metrics"]]
    return ["loss", *(f"{o}_{m}" for o, s in outputs.items() for m in ("loss", *s["metrics"]))]


def _embedding(draw: st.DrawFn, layers: list[dict[str, Any]], vals: list[Val], source: Val) -> None:
    dim, vocab, mask = draw(small), draw(st.integers(4, 9)), draw(st.booleans())
    key = f"n{len(layers)}"
    layers.append({"name": key, "type": "embedding", "input": source.key, "vocab_size": vocab, "dim": dim, "mask_zero": mask})
    if source.rank == "id":
        vals.append(Val(key, "vec", dim))
    else:
        source.features = min(source.features, vocab) if source.features else vocab  # the smallest bounds feedback's ids
        vals.append(Val(key, "seq", dim, source.time, source.lengths or (source.time if mask else None), source.steps))


def _add_layer(draw: st.DrawFn, layers: list[dict[str, Any]], vals: list[Val]) -> None:
    seqs = [v for v in vals if v.rank == "seq"]
    vecs = [v for v in vals if v.rank == "vec"]
    ids = [v for v in vals if v.rank in ("ids", "id")]
    options = [o for o, ok in (("embedding", ids), ("recurrent", seqs), ("recurrent", seqs), ("dense", seqs or vecs),
                               ("per_step", seqs or vecs), ("conv1d", seqs), ("pool", seqs), ("merge", seqs or vecs),
                               ("merge", seqs or vecs), ("repeat_vector", vecs), ("attention", seqs), ("attention", seqs),
                               ("normalization", [v for v in seqs + vecs if v.is_input])) if ok]
    if not options:
        return
    key = f"n{len(layers)}"
    match draw(st.sampled_from(options)):
        case "embedding":
            _embedding(draw, layers, vals, draw(st.sampled_from(ids)))
        case "recurrent":
            source = draw(st.sampled_from(seqs))
            starts = [v for v in vals if v.recurrent]
            start = draw(st.sampled_from(starts)) if starts and draw(st.booleans()) else None
            kind, units, directions = start.recurrent if start and start.recurrent else (
                draw(st.sampled_from(ir.RECURRENT_KINDS)), draw(small), draw(st.sampled_from([1, 2])))
            layer = {"name": key, "type": kind, "units": units, "input": source.key, "bidirectional": directions == 2,
                     "return_sequences": draw(st.booleans()), "dropout": draw(rate)}
            if start is not None:  # an encoder's final state starts this one
                layer["initial_state"] = f"{start.key}.state"
            layers.append(layer)
            out = units * directions
            if layer["return_sequences"]:
                vals.append(Val(key, "seq", out, source.time, source.lengths, source.steps, (kind, units, directions)))
            else:
                vals.append(Val(key, "vec", out, recurrent=(kind, units, directions)))
        case "dense":
            source = draw(st.sampled_from(seqs + vecs))
            units = draw(small)
            layers.append({"name": key, "type": "dense", "units": units, "input": source.key,
                           "activation": draw(st.sampled_from(ir.ACTIVATIONS))})
            vals.append(Val(key, source.rank, units, source.time, source.lengths, source.steps))
        case "per_step":
            source = draw(st.sampled_from(seqs + vecs))
            layers.append({"name": key, "input": source.key, **draw(st.sampled_from([
                {"type": "dropout", "rate": 0.1}, {"type": "activation", "activation": "tanh"}, {"type": "layer_norm"}]))})
            vals.append(Val(key, source.rank, source.features, source.time, source.lengths, source.steps))
        case "conv1d":
            source = draw(st.sampled_from(seqs))
            filters, stride = draw(small), draw(st.sampled_from([1, 1, 2]))
            layers.append({"name": key, "type": "conv1d", "input": source.key, "filters": filters,
                           "kernel_size": draw(st.integers(1, 3)), "stride": stride})
            if stride == 1:
                vals.append(Val(key, "seq", filters, source.time, source.lengths, source.steps))
            else:
                steps = None if source.steps is None else -(-source.steps // 2)
                vals.append(Val(key, "seq", filters, key, key if source.lengths else None, steps))
        case "pool":
            source = draw(st.sampled_from(seqs))
            layers.append({"name": key, "type": "pool", "input": source.key, "mode": draw(st.sampled_from(["last", "mean", "max"]))})
            vals.append(Val(key, "vec", source.features))
        case "merge":
            _merge(draw, layers, vals, key, seqs, vecs)
        case "repeat_vector":
            source = draw(st.sampled_from(vecs))
            if seqs and draw(st.booleans()):
                like = draw(st.sampled_from(seqs))
                layers.append({"name": key, "type": "repeat_vector", "input": source.key, "like": like.key})
                vals.append(Val(key, "seq", source.features, like.time, like.lengths, like.steps))
            else:
                n = draw(st.integers(1, 4))
                layers.append({"name": key, "type": "repeat_vector", "input": source.key, "n": n})
                vals.append(Val(key, "seq", source.features, key, None, n))
        case "attention":
            value = draw(st.sampled_from(seqs))
            query = draw(st.none() | st.sampled_from(seqs + vecs))
            layer: dict[str, Any] = {"name": key, "type": "attention", "value": value.key}
            if query is not None and query.features != value.features:
                layer["score"] = draw(st.sampled_from(["general", "additive"]))
            else:
                layer["score"] = draw(st.sampled_from(["dot", "general", "additive"]))
            if layer["score"] == "dot":  # scale and units belong to one score each
                layer["scale"] = draw(st.booleans())
            if layer["score"] == "additive":
                layer["units"] = draw(small)
            if query is None:
                vals.append(Val(key, "vec", value.features))
            else:
                layer["query"] = query.key
                vals.append(Val(key, query.rank, value.features, query.time, query.lengths, query.steps))
            layers.append(layer)
        case "normalization":
            source = draw(st.sampled_from([v for v in seqs + vecs if v.is_input]))
            layers.append({"name": key, "type": "normalization", "input": source.key})
            vals.append(Val(key, source.rank, source.features, source.time, source.lengths, source.steps))


def _merge(draw: st.DrawFn, layers: list[dict[str, Any]], vals: list[Val], key: str, seqs: list[Val], vecs: list[Val]) -> None:
    """Values that merge: vectors, or sequences on one time axis with one lengths."""
    groups: dict[Any, list[Val]] = {}
    for v in seqs + vecs:
        groups.setdefault((v.rank, v.time, v.lengths), []).append(v)
    group = draw(st.sampled_from(sorted(groups.values(), key=lambda g: g[0].key)))
    kind = draw(st.sampled_from(["concatenate", "add", "multiply", "average"]))
    if kind != "concatenate":
        sizes: dict[int, list[Val]] = {}
        for v in group:
            sizes.setdefault(v.features, []).append(v)
        group = draw(st.sampled_from(sorted(sizes.values(), key=lambda g: g[0].key)))
    chosen = draw(st.lists(st.sampled_from(group), min_size=2, max_size=3))
    layers.append({"name": key, "type": kind, "input": [v.key for v in chosen]})
    first = chosen[0]
    features = sum(v.features for v in chosen) if kind == "concatenate" else first.features
    vals.append(Val(key, first.rank, features, first.time, first.lengths, first.steps))


def _maybe_feedback(draw: st.DrawFn, layers: list[dict[str, Any]], vals: list[Val], inputs: dict[str, Any],
                    outputs: dict[str, Any]) -> None:
    """An output that predicts an ids input's next step, on that input's steps."""
    for source in (v for v in vals if v.rank == "ids" and v.features):
        # its own embeddings: a value the fuzzer built further may need steps not decoded yet (rnnc.decoding)
        embeddings = {l["name"] for l in layers if l["type"] == "embedding" and l["input"] == source.key}
        on_its_steps = [v for v in vals if v.rank == "seq" and v.time == source.key and v.key in embeddings]
        if not on_its_steps or not draw(st.booleans()):
            continue
        name = f"next_{source.key}"
        layers.append({"name": name, "type": "dense", "units": source.features, "activation": "softmax",
                       "input": draw(st.sampled_from(on_its_steps)).key})
        outputs[name] = {"loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"],
                         "feedback": {"input": source.key, "start": 1, "end": source.features - 1, "max_length": 6}}
        return


GRAPH_OPS = ["generic", "generic", "rename_reference", "move_layer", "drop_layer", "wire_state", "listify", "rename_output"]


@st.composite
def mutated_graphs(draw: st.DrawFn) -> Any:
    """A valid graph or a ready one, broken by one to four edits."""
    data: Any = draw(valid_graphs()) if draw(st.booleans()) or not GRAPH_BASES else copy.deepcopy(
        GRAPH_BASES[draw(st.sampled_from(sorted(GRAPH_BASES)))])
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        op = draw(st.sampled_from(GRAPH_OPS))
        layers = data.get("layers") if isinstance(data, dict) else None
        if op == "generic" or not isinstance(layers, list) or not layers or not all(isinstance(l, dict) for l in layers):
            data = _mutate(draw, data, GRAPH_KEYS, GRAPH_WORDS, graph_values)
            continue
        i = draw(st.integers(0, len(layers) - 1))
        word = draw(st.sampled_from(GRAPH_WORDS) | st.text(max_size=6))
        match op:
            case "rename_reference":
                layers[i][draw(st.sampled_from(["input", "query", "like", "value", "name"]))] = word
            case "move_layer":
                layers.insert(draw(st.integers(0, len(layers) - 1)), layers.pop(i))
            case "drop_layer":
                del layers[i]
            case "wire_state":
                layers[i]["initial_state"] = draw(st.sampled_from(NAMES)) + draw(st.sampled_from([".state", ".state", "", ".h"]))
            case "listify":
                layers[i]["input"] = draw(st.lists(st.sampled_from(NAMES) | st.just(word), max_size=3))
            case "rename_output" if isinstance(data.get("outputs"), dict) and data["outputs"]:
                outputs = data["outputs"]
                outputs[word] = outputs.pop(draw(st.sampled_from(sorted(outputs))))
    return data
