"""The ONNX export of graphs (spec version 2), without torch: onnxruntime against a numpy
reference written here, the graph's interface and metadata, streaming, and what cannot
be exported.

The reference runs each sample alone, cut to the real steps of every input, in float64:
what padding must not change is written into it (a recurrent layer's final state is
its last real step's, and its initial state where it has none; attention over a value
with no real step gives zeros; sequence outputs are zero past their lengths). Padded
float steps hold large junk, so a result that reads them is far off. (The file is not
named test_onnx_graph.py: tests/onnx has one, and pytest needs unique basenames.)
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import onnx
import pytest
from export_cases import (
    ADD_NUMBERS, ATTENTION, CHURN, CHURN_TEXT, GRAPHS, MERGES, SIZES, STATES, STREAMING, draw, graph, random_weights, run, seq,
    session,
)

import rnnc_onnx
from rnnc import ir
from rnnc.errors import ArtifactError, SpecError, UsageError
from rnnc.metadata import graph_interface
from rnnc.spec import model_from_text
from rnnc_onnx import graph_layers, recurrent

FLOAT, INT64 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT64


# --- the numpy reference ------------------------------------------------------------------


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


ACTIVATIONS = {"linear": lambda z: z, "relu": lambda z: np.maximum(z, 0), "tanh": np.tanh, "sigmoid": sigmoid,
               "softmax": softmax}


def step(kind: str, w: dict[str, np.ndarray], x: np.ndarray, h: np.ndarray, c: np.ndarray, act: str) -> tuple[np.ndarray, np.ndarray]:
    """One step of a torch-layout cell (gates LSTM i, f, g, o; GRU r, z, n)."""
    gi, gh = w["weight_ih"] @ x + w["bias_ih"], w["weight_hh"] @ h + w["bias_hh"]
    if kind == "lstm":
        i, f, g, o = np.split(gi + gh, 4)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        return sigmoid(o) * np.tanh(c), c
    if kind == "gru":
        (ri, zi, ni), (rh, zh, nh) = np.split(gi, 3), np.split(gh, 3)
        r, z = sigmoid(ri + rh), sigmoid(zi + zh)
        return (1 - z) * np.tanh(ni + r * nh) + z * h, c
    return ACTIVATIONS[act](gi + gh), c


def run_recurrent(node: ir.Node, w: dict[str, np.ndarray], x: np.ndarray, start: Any) -> tuple[np.ndarray, Any]:
    layer = node.layer
    assert isinstance(layer, ir.Recurrent)
    ys, final = [], []
    for d, suffix in enumerate(("", "_reverse")[: layer.directions]):
        cell = {k: w[f"{k}{suffix}"] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        h, c = (np.zeros(layer.units), np.zeros(layer.units)) if start is None else (start[0][d], start[1][d])
        out = np.zeros((len(x), layer.units))
        for t in range(len(x)) if d == 0 else reversed(range(len(x))):
            h, c = step(layer.kind, cell, x[t], h, c, getattr(layer, "activation", "tanh"))
            out[t] = h
        ys.append(out)
        final.append((h, c))
    state = (np.stack([h for h, _ in final]), np.stack([c for _, c in final]))
    return (np.concatenate(ys, -1) if layer.return_sequences else np.concatenate(state[0])), state


def attend(layer: ir.Attention, w: dict[str, np.ndarray], value: np.ndarray, query: np.ndarray | None) -> np.ndarray:
    q = w["query"] if query is None else query
    qs = np.atleast_2d(q)  # [tq, d_q]
    if layer.score == "dot":
        scores = qs @ value.T / (np.sqrt(value.shape[1]) if layer.scale else 1.0)
    elif layer.score == "general":
        scores = qs @ w["weight"] @ value.T
    else:
        scores = np.tanh((qs @ w["weight_query"].T)[:, None, :] + (value @ w["weight_value"].T)[None, :, :]) @ w["v"]
    out = softmax(scores) @ value if len(value) else np.zeros((len(qs), value.shape[1]))
    return out if q.ndim == 2 else out[0]


def reference_node(node: ir.Node, w: dict[str, np.ndarray], xs: list[np.ndarray], start: Any) -> tuple[np.ndarray, Any]:
    layer, x = node.layer, xs[0]
    match layer:
        case ir.SimpleRNN() | ir.LSTM() | ir.GRU():
            return run_recurrent(node, w, x, start)
        case ir.Embedding():
            return w["weight"][x], None
        case ir.Dense():
            return ACTIVATIONS[layer.activation](x @ w["weight"].T + w["bias"]), None
        case ir.Dropout():
            return x, None
        case ir.Normalization():
            return (x - w["mean"]) / np.maximum(np.sqrt(w["variance"]), 1e-7), None
        case ir.Concatenate():
            return np.concatenate(xs, -1), None
        case ir.Add():
            return np.sum(xs, axis=0), None
        case ir.Multiply():
            return np.prod(xs, axis=0), None
        case ir.Average():
            return np.mean(xs, axis=0), None
        case ir.RepeatVector():
            return np.repeat(x[None], len(xs[1]) if layer.like else layer.n, axis=0), None
        case ir.Attention():
            return attend(layer, w, x, xs[1] if layer.query else None), None
        case ir.Conv1D():  # same padding, TensorFlow's split: the extra pad on the right
            k, s = layer.kernel_size, layer.stride
            out_len = -(-len(x) // s)
            if not out_len:
                return np.zeros((0, layer.filters)), None
            left = max((out_len - 1) * s + k - len(x), 0) // 2
            padded = np.concatenate([np.zeros((left, x.shape[1])), x, np.zeros((k, x.shape[1]))])
            windows = np.stack([padded[i * s: i * s + k] for i in range(out_len)]).reshape(out_len, -1)
            kernel = w["weight"].transpose(0, 2, 1).reshape(layer.filters, -1)  # [filters, k * F]
            return ACTIVATIONS[layer.activation](windows @ kernel.T + w["bias"]), None
        case ir.Pool(mode="max"):
            return (x.max(0) if len(x) else np.zeros(x.shape[1])), None
    raise NotImplementedError(layer.kind)


def reference(model: ir.Model, weights: dict[str, np.ndarray], inputs: dict[str, np.ndarray],
              lengths: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Each output's value per sample, every sequence cut to its real steps."""
    rows: dict[str, list[np.ndarray]] = {out.name: [] for out in model.outputs}
    by_index = {n.index: n for n in model.nodes}
    for b in range(len(next(iter(inputs.values())))):
        env = {name: (x[b, : lengths[name][b]] if name in lengths else x[b]) for name, x in inputs.items()}
        env = {name: (x if x.dtype == np.int64 else x.astype(np.float64)) for name, x in env.items()}
        states: dict[str, Any] = {}
        for node in model.nodes:
            w = {p.name.split(".", 2)[2]: weights[p.name].astype(np.float64) for p in node.params}
            env[node.key], states[node.key] = reference_node(node, w, [env[k] for k in node.sources], states.get(node.state_from))
        for out in model.outputs:
            rows[out.name].append(env[by_index[out.node].key])
    return rows


# --- running the export -----------------------------------------------------------------


def assert_rows(got: np.ndarray, rows: list[np.ndarray], what: str) -> None:
    assert len(got) == len(rows), what
    for i, row in enumerate(rows):
        if got.ndim == 3:  # a sequence: its real steps, then zeros
            np.testing.assert_allclose(got[i, : len(row)], row, atol=1e-5, rtol=1e-5, err_msg=f"{what}, row {i}")
            assert not got[i, len(row):].any(), f"{what}, row {i}: not zero past its length"
        else:
            np.testing.assert_allclose(got[i], row, atol=1e-5, rtol=1e-5, err_msg=f"{what}, row {i}")


def check_against_reference(model: ir.Model, sizes: list[tuple[int, int]] = SIZES, seed: int = 0) -> None:
    weights = random_weights(model, seed)
    sess = session(model, weights)
    rng = np.random.default_rng(seed)
    for batch, steps in sizes:
        inputs, lengths = draw(model, batch, steps, rng)
        got, want = run(sess, inputs, lengths), reference(model, weights, inputs, lengths)
        assert list(got)[: len(want)] == list(want)
        for name, rows in want.items():
            assert_rows(got[name], rows, f"{name} at batch {batch}, {steps} steps")


@pytest.mark.parametrize("name", list(GRAPHS))
def test_onnxruntime_matches_the_numpy_reference(name: str) -> None:
    check_against_reference(GRAPHS[name])


@pytest.mark.parametrize("name", list(GRAPHS))
def test_padding_further_with_junk_changes_no_output(name: str) -> None:
    model = GRAPHS[name]
    sess = session(model, random_weights(model))
    rng = np.random.default_rng(5)
    inputs, lengths = draw(model, 6, 9, rng)
    wider = {}
    for inp in model.inputs:
        x = inputs[inp.name]
        if inp.variable_length:
            junk = rng.integers(1, 5, (6, 11)) if inp.dtype == "int64" else rng.normal(0, 1e3, (6, 11, x.shape[2]))
            x = np.concatenate([x, junk.astype(x.dtype)], axis=1)
        wider[inp.name] = x
    narrow, wide = run(sess, inputs, lengths), run(sess, wider, lengths)
    for key, value in narrow.items():
        np.testing.assert_allclose(wide[key][:, : value.shape[1]] if value.ndim == 3 else wide[key], value, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("name", list(GRAPHS))
def test_every_graph_passes_the_full_checker(name: str) -> None:
    onnx.checker.check_model(rnnc_onnx.lower(GRAPHS[name], random_weights(GRAPHS[name])), full_check=True)


# --- a deliberately broken lowering must fail these tests ---------------------------------


def test_attention_without_its_mask_fails_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph_layers, "_masked_softmax", lambda g, scores, value, hint: g.op("Softmax", [scores], hint, axis=-1))
    with pytest.raises(AssertionError, match="Not equal to tolerance"):
        check_against_reference(ATTENTION, [(3, 7)])


def test_an_empty_sequence_that_drops_its_initial_state_fails_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recurrent, "_or_initial", lambda g, final, initial, lengths, hint: final)
    with pytest.raises(AssertionError, match="Not equal to tolerance"):
        check_against_reference(STATES, [(3, 7)])


# --- the interface and the metadata ---------------------------------------------------------


def interface(values: Any) -> list[tuple[str, int, list[object]]]:
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    return [(v.name, v.type.tensor_type.elem_type, dims(v)) for v in values]


INTERFACES = [
    ("churn", CHURN,
     [("events", FLOAT, ["batch", "time", 12]), ("profile", FLOAT, ["batch", 5]), ("events.lengths", INT64, ["batch"])],
     [("churn", FLOAT, ["batch", 1])]),
    ("add_numbers", ADD_NUMBERS,
     [("question", INT64, ["batch", "question.time"]), ("answer_in", INT64, ["batch", "answer_in.time"]),
      ("question.lengths", INT64, ["batch"]), ("answer_in.lengths", INT64, ["batch"])],
     [("answer", FLOAT, ["batch", "answer_in.time", 14])]),
    ("merges", MERGES,
     [("a", FLOAT, ["batch", "a.time", 3]), ("s", FLOAT, ["batch", 3]), ("k", INT64, ["batch"]), ("ids", INT64, ["batch", "ids.time"]),
      ("a.lengths", INT64, ["batch"]), ("ids.lengths", INT64, ["batch"])],
     [("tags", FLOAT, ["batch", "a.time", 2]), ("fixed", FLOAT, ["batch", 4, 3]), ("static_sum", FLOAT, ["batch", 3]),
      ("pooled", FLOAT, ["batch", 3]), ("id_gru", FLOAT, ["batch", "ids.time", 2]), ("floored", FLOAT, ["batch", "a.time", 3])]),
]


@pytest.mark.parametrize(("name", "model", "inputs", "outputs"), INTERFACES, ids=[i[0] for i in INTERFACES])
def test_inputs_and_outputs_carry_the_spec_s_names_in_spec_order(name: str, model: ir.Model, inputs: list, outputs: list) -> None:
    proto = rnnc_onnx.lower(model, random_weights(model))
    assert interface(proto.graph.input) == inputs
    assert interface(proto.graph.output) == outputs


def test_the_metadata_holds_the_graph_interface_and_classes_by_output() -> None:
    classes = {"tags": ["no", "yes"]}
    proto = rnnc_onnx.lower(MERGES, random_weights(MERGES), classes=classes)
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["spec_version"] == "2"
    assert json.loads(props["graph"]) == json.loads(json.dumps(graph_interface(MERGES, classes)))
    tags, fixed = json.loads(props["graph"])["outputs"][:2]
    assert (tags["classes"], tags["lengths"]) == (["no", "yes"], "a")  # a per-step output follows a's lengths
    assert "lengths" not in fixed  # repeat_vector n: every step real
    assert props["input"].startswith("a float32 [batch, time, 3]; a.lengths int64 [batch]: real steps")
    assert props["output"].split("; ")[2] == "static_sum float32 [batch, 3]: values"
    assert {"spec_name", "spec_hash", "rnnc_version", "opset", "streaming", "rnnc_sha256"} <= set(props)
    assert not {"timesteps", "features", "lengths", "classes", "vocab_size"} & set(props)  # v1's, for input x


def test_a_single_output_takes_a_plain_list_of_classes() -> None:
    proto = rnnc_onnx.lower(CHURN, random_weights(CHURN), classes=["stay", "leave"])
    graph_json = json.loads({p.key: p.value for p in proto.metadata_props}["graph"])
    assert graph_json["outputs"][0]["classes"] == ["stay", "leave"]


BAD_CLASSES = [
    (MERGES, ["a", "b"], "the model has 6 outputs (tags, fixed, static_sum, pooled, id_gru, floored): "
                         "give class names for each output by name"),
    (MERGES, {"tag": ["a", "b"]}, "class names given for tag, which is not an output; outputs: tags, fixed, static_sum, pooled, "
                                  "id_gru, floored"),
    (MERGES, {"tags": ["a", "b", "c"]}, "output tags: 3 class names given, the model's output has 2 classes"),
    (MERGES, {"fixed": ["a"]}, "output fixed: class names given for a model with loss mse, which has no classes"),
]


@pytest.mark.parametrize(("model", "classes", "message"), BAD_CLASSES, ids=[m for _, _, m in BAD_CLASSES])
def test_class_names_that_do_not_fit_are_a_usage_error(model: ir.Model, classes: Any, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        rnnc_onnx.lower(model, random_weights(model), classes=classes)
    assert str(caught.value) == message


def test_weights_that_do_not_fit_are_an_artifact_error() -> None:
    weights = random_weights(CHURN)
    del weights["layers.0.bias_hh"]
    with pytest.raises(ArtifactError, match="weights do not fit the spec: missing layers.0.bias_hh"):
        rnnc_onnx.lower(CHURN, weights)


def test_output_names_may_be_what_the_exporter_calls_its_own_tensors() -> None:
    """Names the builder uses for its tensors (`mask`, `positions`, ...), an output that
    is another's value through dropout, and one that is a graph input's."""
    model = graph(
        {"x": seq(2), "s": {"shape": [2]}},
        [
            {"name": "mask", "type": "dense", "units": 2, "input": "x"},
            {"name": "positions", "type": "dropout", "rate": 0.1, "input": "mask"},
            {"name": "zero_padded", "type": "dropout", "rate": 0.1, "input": "s"},
            {"name": "steps", "type": "attention", "value": "mask", "query": "zero_padded"},
        ],
        ["mask", "positions", "zero_padded", "steps"],
    )
    weights = random_weights(model)
    proto = rnnc_onnx.lower(model, weights)
    onnx.checker.check_model(proto, full_check=True)
    assert [o.name for o in proto.graph.output] == ["mask", "positions", "zero_padded", "steps"]
    inputs, lengths = draw(model, 4, 6, np.random.default_rng(0))
    got, want = run(session(model, weights), inputs, lengths), reference(model, weights, inputs, lengths)
    for name, rows in want.items():
        assert_rows(got[name], rows, name)


def test_the_backend_compiles_a_graph_without_weights_and_the_cli_writes_it(tmp_path: Any) -> None:
    import subprocess
    import sys

    proto = rnnc_onnx.backend.compile(MERGES)  # freshly initialised: normalization's mean 0, variance 1
    onnx.checker.check_model(proto, full_check=True)
    spec = tmp_path / "churn.yaml"
    spec.write_text(CHURN_TEXT)
    done = subprocess.run([sys.executable, "-m", "rnnc", "compile", str(spec), "--backend", "onnx", "--classes", "stay,leave",
                           "-o", str(tmp_path / "m.onnx")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    written = onnx.load(str(tmp_path / "m.onnx"))
    assert [i.name for i in written.graph.input] == ["events", "profile", "events.lengths"]
    assert json.loads({p.key: p.value for p in written.metadata_props}["graph"])["outputs"][0]["classes"] == ["stay", "leave"]


# --- streaming ------------------------------------------------------------------------------

def test_a_streaming_graph_takes_and_returns_each_state() -> None:
    proto = rnnc_onnx.lower(STREAMING, random_weights(STREAMING))
    onnx.checker.check_model(proto, full_check=True)
    states = [("state.0.h", 4), ("state.0.c", 4), ("state.4.h", 3), ("state.7.last", 2)]
    assert interface(proto.graph.input)[3:] == [(name, FLOAT, ["batch", size]) for name, size in states]
    assert [o.name for o in proto.graph.output] == ["tags", "score", "last_tag", *(f"{name}.next" for name, _ in states)]
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["states"]) == [{"name": name, "size": size} for name, size in states]


@pytest.mark.parametrize("size", [1, 4, 23])
def test_a_streamed_sequence_beside_static_features_gives_the_whole_sequence_s_outputs(size: int) -> None:
    sess = session(STREAMING, random_weights(STREAMING))
    rng = np.random.default_rng(size)
    events = rng.normal(size=(5, 23, 3)).astype(np.float32)
    profile = rng.normal(size=(5, 2)).astype(np.float32)
    lengths = np.array([23, 0, 9, 17, 1])
    states = {s.name: np.zeros((5, s.shape[1]), np.float32) for s in sess.get_inputs() if s.name.startswith("state.")}
    names = [o.name for o in sess.get_outputs()]
    whole = dict(zip(names, sess.run(None, {"events": events, "profile": profile, "events.lengths": lengths, **states})))
    tags = []
    for start in range(0, 23, size):
        chunk_lengths = np.clip(lengths - start, 0, size)
        out = dict(zip(names, sess.run(None, {"events": events[:, start: start + size], "profile": profile,
                                              "events.lengths": chunk_lengths, **states})))
        states = {name: out[f"{name}.next"] for name in states}
        tags.append(out["tags"])
    np.testing.assert_allclose(np.concatenate(tags, axis=1), whole["tags"], atol=1e-5)
    for name in ("score", "last_tag"):
        np.testing.assert_allclose(out[name], whole[name], atol=1e-5, err_msg=name)


CANNOT_STREAM = [
    ({"name": "att", "type": "attention", "value": "enc"},
     "layers[1] (attention): attention reads the whole value sequence at every step, so it cannot stream; "
     "set export.streaming: false to export it"),
    ({"name": "dec", "type": "lstm", "units": 4, "input": "enc", "initial_state": "enc.state"},
     "layers[1] (lstm): a layer started from another layer's state cannot stream: each chunk would start it again; "
     "set export.streaming: false to export it"),
    ({"name": "bi", "type": "gru", "units": 4, "bidirectional": True, "input": "enc"},
     "layers[1] (gru): a bidirectional layer cannot stream, its backward direction needs the whole sequence; "
     "set export.streaming: false to export it"),
]


@pytest.mark.parametrize(("layer", "message"), CANNOT_STREAM, ids=[layer["type"] for layer, _ in CANNOT_STREAM])
def test_what_cannot_stream_is_a_spec_error_naming_the_layer(layer: dict[str, Any], message: str) -> None:
    # the core refuses these specs (rnnc check); an IR built otherwise meets the exporter's own rule
    model = graph({"x": seq(3)}, [{"name": "enc", "type": "lstm", "units": 4, "return_sequences": True}, layer], [layer["name"]])
    model = dataclasses.replace(model, export=ir.Export(streaming=True))
    assert [f"{p.path}: {p.message}" for p in rnnc_onnx.export_problems(model)] == [message]
    with pytest.raises(SpecError, match="cannot stream"):
        rnnc_onnx.lower(model, random_weights(model))


def test_class_names_by_output_for_a_chain_are_a_usage_error() -> None:
    chain = model_from_text("rnnc: 1\nname: c\ninput: {shape: [4, 2]}\nlayers: [{type: lstm, units: 2}, "
                            "{type: dense, units: 1, activation: sigmoid}]\nloss: binary_crossentropy\noptimizer: adam\n")
    with pytest.raises(UsageError, match=r"^class names by output name are for graphs \(spec version 2\); this model has one "
                                         "output: give a list$"):
        rnnc_onnx.lower(chain, random_weights(chain), classes={"y": ["a", "b"]})
