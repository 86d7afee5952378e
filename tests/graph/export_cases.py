"""Graphs (spec version 2) for the ONNX export's tests, their weights and batches, and
running them on onnxruntime; test modules next to this file import it as `from
export_cases import ...`.

Together the graphs hold every new kind and option (attention dot, scaled, general,
additive, with a sequence, a vector or a learned query, over a variable- or a
fixed-length value; the merges; repeat_vector n and like; normalization of sequences
and vectors; an embedding of one id per sample and of ids with mask_zero), initial
state across two variable-length inputs for each recurrent kind, and the two examples
of DESIGN.md as written there; each has several inputs and most several outputs.
`draw` pads with junk: large floats past each length, ids past the real ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort

import rnnc_onnx
from seq2seq_spec import seq2seq_spec
from rnnc import ir
from rnnc.metadata import lengths_rules
from rnnc.spec import model_from_mapping, model_from_text

SIZES = [(b, t) for b in (1, 3, 17) for t in (1, 7, 50)]  # (batch, steps)


def graph(inputs: dict[str, Any], layers: list[dict[str, Any]], outputs: list[str] | dict[str, Any],
          **extra: Any) -> ir.Model:
    if isinstance(outputs, list):
        outputs = {name: {"loss": "mse"} for name in outputs}
    return model_from_mapping({"rnnc": 2, "name": "t", "inputs": inputs, "layers": layers, "outputs": outputs,
                               "optimizer": "adam", **extra})


def seq(features: int) -> dict[str, Any]:
    return {"shape": [None, features]}


ATTENTION = graph(
    {"v": seq(4), "q": seq(4), "p": seq(3), "s": {"shape": [3]}, "u": {"shape": [4]}, "f": {"shape": [6, 4]}},
    [
        {"name": "dot", "type": "attention", "value": "v", "query": "q"},
        {"name": "vector_dot", "type": "attention", "value": "v", "query": "u", "scale": True},
        {"name": "fixed_value", "type": "attention", "value": "f", "query": "p", "score": "general"},
        {"name": "dot_scaled", "type": "attention", "value": "v", "query": "q", "scale": True},
        {"name": "general", "type": "attention", "value": "v", "query": "p", "score": "general"},
        {"name": "additive", "type": "attention", "value": "v", "query": "p", "score": "additive", "units": 5},
        {"name": "vector_general", "type": "attention", "value": "v", "query": "s", "score": "general"},
        {"name": "vector_additive", "type": "attention", "value": "v", "query": "s", "score": "additive", "units": 2},
        {"name": "pool_dot", "type": "attention", "value": "v"},
        {"name": "pool_general", "type": "attention", "input": "v", "score": "general"},
        {"name": "pool_additive", "type": "attention", "value": "v", "score": "additive", "units": 3},
    ],
    ["dot", "vector_dot", "fixed_value", "dot_scaled", "general", "additive", "vector_general", "vector_additive", "pool_dot", "pool_general",
     "pool_additive"],
)

MERGES = graph(
    {"a": seq(3), "s": {"shape": [3]}, "k": {"shape": [], "dtype": "int64"}, "ids": {"shape": [5], "dtype": "int64"}},
    [
        {"name": "na", "type": "normalization", "input": "a"},
        {"name": "ns", "type": "normalization", "input": "s"},
        {"name": "enc", "type": "lstm", "units": 3, "return_sequences": True, "input": "na"},
        {"name": "per", "type": "dense", "units": 3, "activation": "tanh", "input": "a"},
        {"name": "added", "type": "add", "input": ["enc", "per", "na"]},
        {"name": "product", "type": "multiply", "input": ["enc", "per"]},
        {"name": "mean", "type": "average", "input": ["per", "enc"]},
        {"name": "kind", "type": "embedding", "input": "k", "vocab_size": 5, "dim": 3},
        {"name": "vec", "type": "concatenate", "input": ["ns", "kind"]},
        {"name": "over", "type": "repeat_vector", "input": "vec", "like": "enc"},
        {"name": "joined", "type": "concatenate", "input": ["added", "product", "mean", "over"]},
        {"name": "tags", "type": "dense", "units": 2, "activation": "softmax"},
        {"name": "fixed", "type": "repeat_vector", "input": "ns", "n": 4},
        {"name": "static_sum", "type": "average", "input": ["ns", "kind"]},
        {"name": "conv", "type": "conv1d", "filters": 3, "kernel_size": 3, "stride": 2, "input": "joined"},
        {"name": "pooled", "type": "pool", "mode": "max"},
        {"name": "id_emb", "type": "embedding", "input": "ids", "vocab_size": 6, "dim": 3, "mask_zero": True},
        {"name": "id_gru", "type": "gru", "units": 2, "return_sequences": True},
        {"name": "floored", "type": "normalization", "input": "a"},
    ],
    {"tags": {"loss": "sparse_categorical_crossentropy"}, "fixed": {"loss": "mse"}, "static_sum": {"loss": "mse"},
     "pooled": {"loss": "mse"}, "id_gru": {"loss": "mse"}, "floored": {"loss": "mse"}},
)

STATES = graph(
    {"a": seq(3), "b": seq(2)},
    [
        {"name": "enc", "type": "lstm", "units": 4, "return_sequences": True, "input": "a"},
        {"name": "dec", "type": "lstm", "units": 4, "input": "b", "initial_state": "enc.state"},
        {"name": "dec2", "type": "lstm", "units": 4, "return_sequences": True, "input": "b", "initial_state": "dec.state"},
        {"name": "genc", "type": "gru", "units": 3, "bidirectional": True, "input": "a"},
        {"name": "gdec", "type": "gru", "units": 3, "bidirectional": True, "return_sequences": True, "input": "b",
         "initial_state": "genc.state"},
        {"name": "renc", "type": "simple_rnn", "units": 3, "activation": "relu", "return_sequences": True, "input": "a"},
        {"name": "rdec", "type": "simple_rnn", "units": 3, "activation": "relu", "input": "b", "initial_state": "renc.state"},
    ],
    ["dec", "dec2", "genc", "gdec", "rdec"],
)

# The two examples of DESIGN.md, as written there.
CHURN_TEXT = """
rnnc: 2
name: churn
inputs:
  events: {shape: [null, 12]}
  profile: {shape: [5]}
layers:
  - {name: enc, type: lstm, units: 64, input: events}
  - {name: both, type: concatenate, input: [enc, profile]}
  - {type: dense, units: 32, activation: relu}
  - {name: churn, type: dense, units: 1, activation: sigmoid}
outputs:
  churn: {loss: binary_crossentropy, metrics: [auc]}
optimizer: adam
"""
CHURN = model_from_text(CHURN_TEXT)
ADD_NUMBERS = model_from_text(seq2seq_spec(units=128, dim=32, rest='optimizer: {type: adam, lr: 0.002}\n'))
GRAPHS = {"attention": ATTENTION, "merges": MERGES, "states": STATES, "churn": CHURN, "add_numbers": ADD_NUMBERS}


def random_weights(model: ir.Model, seed: int = 0) -> dict[str, np.ndarray]:
    """Weights large enough that every layer matters, kept by the fan-in from chaos (where
    float32 and float64 part ways over 50 steps of 128 units); normalization's variance
    positive, and in a layer named `floored` one feature's below the 1e-7 floor of the
    standard deviation (its outputs, ~1e7, are kept out of every other layer)."""
    rng = np.random.default_rng(seed)
    weights = {p.name: rng.normal(0.0, min(0.5, 1.5 / np.sqrt(p.shape[-1])), p.shape).astype(np.float32) for p in model.params}
    for node in model.nodes:
        if isinstance(node.layer, ir.Normalization):
            variance = rng.uniform(0.2, 4.0, node.output_shape[-1])
            if node.name == "floored":
                variance[0] = 1e-16
            weights[f"layers.{node.index}.variance"] = variance.astype(np.float32)
    return weights


def draw(model: ir.Model, batch: int, steps: int, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Inputs and lengths: random in [0, steps] (row 0 full; with three rows or more,
    the i-th input empty in row 1 + i % (batch - 1), so one input is empty where another
    is not), junk in padded float steps, id 0 past the real ones."""
    vocab = {n.sources[0]: n.layer.vocab_size for n in model.nodes if isinstance(n.layer, ir.Embedding)}
    inputs, lengths = {}, {}
    for i, inp in enumerate(model.inputs):
        t = (inp.shape[0] or steps) if inp.sequence else 0  # a fixed-length input has its own steps
        takes_lengths = inp.name in lengths_rules(model)
        real = rng.integers(0, t + 1, batch) if takes_lengths else np.full(batch, t)
        real[0] = t
        if batch > 2 and takes_lengths:
            real[1 + i % (batch - 1)] = 0
        shape = (batch, t) if inp.sequence else (batch,)
        if inp.dtype == "int64":
            x = rng.integers(1 if inp.sequence else 0, vocab[inp.name], shape)
            if inp.sequence:
                x[np.arange(t) >= real[:, None]] = 0
        else:
            x = rng.normal(size=(*shape, inp.shape[-1]))
            if inp.sequence:
                padded = np.arange(t) >= real[:, None]
                x[padded] = rng.normal(0.0, 100.0, (int(padded.sum()), inp.shape[-1]))
        inputs[inp.name] = x.astype(np.int64 if inp.dtype == "int64" else np.float32)
        if takes_lengths:
            lengths[inp.name] = real
    return inputs, lengths



def session(model: ir.Model, weights: dict[str, np.ndarray]) -> ort.InferenceSession:
    return ort.InferenceSession(rnnc_onnx.lower(model, weights).SerializeToString(), providers=["CPUExecutionProvider"])


def run(sess: ort.InferenceSession, inputs: dict[str, np.ndarray], lengths: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    feed = {**inputs, **{f"{name}.lengths": value for name, value in lengths.items()}}
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed), strict=True))


STREAMING = graph(
    {"events": seq(3), "profile": {"shape": [2]}},
    [
        {"name": "enc", "type": "lstm", "units": 4, "return_sequences": True, "input": "events"},
        {"name": "rep", "type": "repeat_vector", "input": "profile", "like": "enc"},
        {"name": "both", "type": "concatenate", "input": ["enc", "rep"]},
        {"name": "tags", "type": "dense", "units": 2, "activation": "softmax"},
        {"name": "summary", "type": "gru", "units": 3, "input": "both"},
        {"name": "side", "type": "concatenate", "input": ["summary", "profile"]},
        {"name": "score", "type": "dense", "units": 1, "activation": "sigmoid"},
        {"name": "last_tag", "type": "pool", "mode": "last", "input": "tags"},
    ],
    ["tags", "score", "last_tag"],
    export={"streaming": True},
)
