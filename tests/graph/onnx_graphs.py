"""Small v2 graph models built by hand with `onnx.helper`, with the interface rnnc's
exporter writes (inputs named after the spec's inputs plus `<input>.lengths`, outputs
named after its outputs, metadata `spec_version: "2"` and `graph`), and the numpy
reference of what each computes, for the runtime and `rnnc predict` tests.

The graph `mixed` has four inputs, one of each kind: `events` float [batch, time, 3]
(lengths `full`), `profile` float [batch, 2], `word` int64 [batch] (a category,
vocabulary 4) and `tokens` int64 [batch, time] (lengths `ids`, vocabulary 5); and
three outputs: `churn` (one sigmoid unit over the events' real steps summed, the
profile and the word's weight), `tags` (softmax per token, zero past the tokens'
lengths) and `level` (two values from the profile). With `streaming=True` it carries
`state.0.h`, the running sum of the events' real steps, so chunks add up to the whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(7)
W_EVENTS = RNG.normal(size=(3, 1)).astype(np.float32)
W_PROFILE = RNG.normal(size=(2, 1)).astype(np.float32)
E_WORD = RNG.normal(size=(4, 1)).astype(np.float32)
E_TOKENS = RNG.normal(size=(5, 3)).astype(np.float32)
W_LEVEL = RNG.normal(size=(2, 2)).astype(np.float32)

INPUTS = [
    {"name": "events", "dtype": "float32", "shape": [None, 3], "sequence": True, "lengths": "full"},
    {"name": "profile", "dtype": "float32", "shape": [2], "sequence": False, "lengths": "none"},
    {"name": "word", "dtype": "int64", "shape": [], "sequence": False, "lengths": "none", "vocab_size": 4},
    {"name": "tokens", "dtype": "int64", "shape": [None], "sequence": True, "lengths": "ids", "vocab_size": 5},
]
OUTPUTS = [
    {"name": "churn", "shape": ["batch", 1], "loss": "binary_crossentropy", "meaning": "probabilities of class 1",
     "classes": ["stay", "leave"]},
    {"name": "tags", "shape": ["batch", "time", 3], "loss": "sparse_categorical_crossentropy",
     "meaning": "per-step class probabilities, zero past each sequence's length", "lengths": "tokens"},
    {"name": "level", "shape": ["batch", 2], "loss": "mse", "meaning": "values"},
]


def _mask(nodes: list, sequence: str, lengths: str, out: str) -> None:
    """`out` float [batch, time, 1]: 1 on the real steps of `sequence`, 0 past `lengths`."""
    nodes += [
        helper.make_node("Shape", [sequence], [f"{out}_t"], start=1, end=2),
        helper.make_node("Squeeze", [f"{out}_t"], [f"{out}_ts"]),
        helper.make_node("Range", ["zero", f"{out}_ts", "one"], [f"{out}_range"]),
        helper.make_node("Unsqueeze", [f"{out}_range", "axis0"], [f"{out}_row"]),
        helper.make_node("Unsqueeze", [lengths, "axis1"], [f"{out}_col"]),
        helper.make_node("Less", [f"{out}_row", f"{out}_col"], [f"{out}_bool"]),
        helper.make_node("Cast", [f"{out}_bool"], [f"{out}_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", [f"{out}_f", "axis2"], [out]),
    ]


def mixed(path: Path, *, streaming: bool = False, inputs: list[dict] | None = None, outputs: list[dict] | None = None,
          metadata: dict[str, str] | None = None) -> Path:
    """Write the `mixed` graph to `path`; `inputs`, `outputs` and `metadata` replace what
    its metadata says (for the tests of models that do not fit)."""
    nodes: list = []
    _mask(nodes, "events", "events.lengths", "events_mask")
    _mask(nodes, "tokens", "tokens.lengths", "tokens_mask")
    nodes += [
        helper.make_node("Mul", ["events", "events_mask"], ["events_real"]),
        helper.make_node("ReduceSum", ["events_real", "axis1"], ["events_sum"], keepdims=0),
    ]
    if streaming:
        nodes.append(helper.make_node("Add", ["events_sum", "state.0.h"], ["state.0.h.next"]))
        total = "state.0.h.next"
    else:
        total = "events_sum"
    nodes += [
        helper.make_node("MatMul", [total, "w_events"], ["from_events"]),
        helper.make_node("MatMul", ["profile", "w_profile"], ["from_profile"]),
        helper.make_node("Gather", ["e_word", "word"], ["from_word"]),
        helper.make_node("Sum", ["from_events", "from_profile", "from_word"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["churn"]),
        helper.make_node("Gather", ["e_tokens", "tokens"], ["token_logits"]),
        helper.make_node("Softmax", ["token_logits"], ["token_probs"], axis=-1),
        helper.make_node("Mul", ["token_probs", "tokens_mask"], ["tags"]),
        helper.make_node("MatMul", ["profile", "w_level"], ["level"]),
    ]
    value = helper.make_tensor_value_info
    graph_inputs = [
        value("events", TensorProto.FLOAT, ["batch", "time", 3]),
        value("events.lengths", TensorProto.INT64, ["batch"]),
        value("profile", TensorProto.FLOAT, ["batch", 2]),
        value("word", TensorProto.INT64, ["batch"]),
        value("tokens", TensorProto.INT64, ["batch", "tokens_time"]),
        value("tokens.lengths", TensorProto.INT64, ["batch"]),
    ]
    graph_outputs = [
        value("churn", TensorProto.FLOAT, ["batch", 1]),
        value("tags", TensorProto.FLOAT, ["batch", "tokens_time", 3]),
        value("level", TensorProto.FLOAT, ["batch", 2]),
    ]
    if streaming:
        graph_inputs.append(value("state.0.h", TensorProto.FLOAT, ["batch", 3]))
        graph_outputs.append(value("state.0.h.next", TensorProto.FLOAT, ["batch", 3]))
    constants = {
        "w_events": W_EVENTS, "w_profile": W_PROFILE, "e_word": E_WORD, "e_tokens": E_TOKENS, "w_level": W_LEVEL,
        "zero": np.array(0, np.int64), "one": np.array(1, np.int64),
        "axis0": np.array([0], np.int64), "axis1": np.array([1], np.int64), "axis2": np.array([2], np.int64),
    }
    graph = helper.make_graph(nodes, "mixed", graph_inputs, graph_outputs,
                              [numpy_helper.from_array(v, k) for k, v in constants.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    props: dict[str, Any] = {
        "spec_version": "2", "spec_name": "mixed", "streaming": "true" if streaming else "false",
        "graph": json.dumps({"inputs": INPUTS if inputs is None else inputs, "outputs": OUTPUTS if outputs is None else outputs}),
        **(metadata or {}),
    }
    for key, text in props.items():
        model.metadata_props.add(key=key, value=text)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return path


def sample(n: int, steps: int = 6, token_steps: int = 4, seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(inputs, lengths) of `n` rows for `mixed`: events padded with junk past their
    lengths, tokens padded with 0 (so the `ids` rule finds their lengths)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, steps + 1, size=n)
    tokens = rng.integers(1, 5, size=(n, token_steps))
    token_lengths = rng.integers(1, token_steps + 1, size=n)
    tokens[np.arange(token_steps)[None, :] >= token_lengths[:, None]] = 0
    inputs = {
        "events": rng.normal(size=(n, steps, 3)).astype(np.float32),
        "profile": rng.normal(size=(n, 2)).astype(np.float32),
        "word": rng.integers(0, 4, size=n),
        "tokens": tokens,
    }
    return inputs, {"events": lengths}


def reference(inputs: dict[str, np.ndarray], lengths: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """What `mixed` computes, in numpy; the tokens' lengths after their last non-zero id
    unless given."""
    lengths = lengths or {}
    events, tokens = np.asarray(inputs["events"], np.float64), np.asarray(inputs["tokens"])
    n, steps = events.shape[:2]
    real = np.arange(steps)[None, :] < np.asarray(lengths.get("events", np.full(n, steps)))[:, None]
    total = (events * real[..., None]).sum(1)
    logit = total @ W_EVENTS + np.asarray(inputs["profile"], np.float64) @ W_PROFILE + E_WORD[np.asarray(inputs["word"])]
    positions = np.arange(1, tokens.shape[1] + 1)
    token_lengths = lengths.get("tokens", ((tokens != 0) * positions).max(1) if tokens.shape[1] else np.zeros(n, int))
    token_real = np.arange(tokens.shape[1])[None, :] < np.asarray(token_lengths)[:, None]
    exp = np.exp(E_TOKENS[tokens].astype(np.float64))
    tags = exp / exp.sum(-1, keepdims=True) * token_real[..., None]
    return {"churn": 1 / (1 + np.exp(-logit)), "tags": tags, "level": np.asarray(inputs["profile"], np.float64) @ W_LEVEL}
