"""`initializer:` (spec-wide and per layer): each scheme's distributions, in torch and numpy alike.

The expected bounds are written here from the schemes' definitions (Keras's glorot and
orthogonal, PyTorch's nn.LSTM/nn.Linear/nn.Conv1d/nn.Embedding rules), not read from
rnnc.initial; each parameter is checked for its bound, its spread, orthogonality and the
LSTM forget quarter, on weights drawn by the torch backend and by `initial_weights`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import rnnc_torch
from rnnc.cli import main
from rnnc.initial import initial_weights
from rnnc.spec import model_from_text

CHAIN = """
rnnc: 1
name: init-chain
input: {{shape: [null], dtype: int64}}
layers:
  - {{type: embedding, vocab_size: 300, dim: 48}}
  - {{type: conv1d, filters: 40, kernel_size: 3}}
  - {{type: lstm, units: 64, return_sequences: true, bidirectional: true}}
  - {{type: gru, units: 48, return_sequences: true}}
  - {{type: simple_rnn, units: 32{rnn_extra}}}
  - {{type: layer_norm}}
  - {{type: dense, units: 50}}
loss: mse
optimizer: adam
training: {{seed: 3{training_extra}}}
"""

GRAPH = """
rnnc: 2
name: init-graph
inputs:
  ids: {{shape: [null], dtype: int64}}
layers:
  - {{name: emb, type: embedding, vocab_size: 200, dim: 40}}
  - {{name: enc, type: lstm, units: 64, return_sequences: true}}
  - {{name: att, type: attention, score: additive, units: 48, value: enc{att_extra}}}
  - {{name: out, type: dense, units: 30}}
outputs:
  out: {{loss: mse}}
optimizer: adam
training: {{seed: 5{training_extra}}}
"""


def glorot(shape: tuple[int, ...]) -> float:
    receptive = math.prod(shape[2:])
    return math.sqrt(6.0 / ((shape[0] + shape[1]) * receptive))


def expected(kind: str, units: int, fan_in: int, short: str, shape: tuple[int, ...], scheme: str
             ) -> tuple[str, float, float | None]:
    """(draw, scale, forget) from the schemes' definitions: uniform bound, normal std."""
    recurrent = kind in ("lstm", "gru", "simple_rnn")
    if scheme in ("keras_lstm", "keras_recurrent"):  # keras's for those layers, torch's for the others
        scheme = "keras" if (kind == "lstm" if scheme == "keras_lstm" else recurrent) else "torch"
    if scheme == "hybrid":
        scheme = "torch" if kind in ("simple_rnn", "gru") else "keras"
    if scheme == "adaptive":  # in CHAIN and GRAPH the one dense layer is the mse output, the embedding reads into conv1d/lstm
        scheme = "torch" if kind in ("simple_rnn", "gru", "dense") else "keras"
    if kind == "layer_norm":
        return ("constant", 1.0 if short == "weight" else 0.0, None)
    if scheme == "keras":
        if recurrent:
            if short.startswith("weight_ih"):
                return ("uniform", glorot(shape), None)
            if short.startswith("weight_hh"):
                return ("orthogonal", 1.0, None)
            return ("constant", 0.0, 1.0 if kind == "lstm" and short.startswith("bias_ih") else None)
        if kind == "embedding":
            return ("uniform", 0.05, None)
        if kind == "attention" and len(shape) == 1:
            return ("uniform", 0.05, None)
        return ("uniform", glorot(shape), None) if short.startswith("weight") else ("constant", 0.0, None)
    if recurrent:
        bound = 1.0 / math.sqrt(units)
        if scheme == "torch_orthogonal" and short.startswith("weight_hh"):
            return ("orthogonal", 1.0, None)
        if scheme == "torch_orthogonal" and kind == "lstm" and short.startswith("bias"):
            return ("uniform", bound, 1.0 if short.startswith("bias_ih") else 0.0)
        return ("uniform", bound, None)
    if kind == "embedding":
        return ("normal", 1.0, None)
    if kind == "attention":  # matrices as nn.Linear weights, vectors +-1/sqrt(size)
        return ("uniform", 1.0 / math.sqrt(shape[1] if len(shape) == 2 else shape[0]), None)
    # nn.Linear / nn.Conv1d: kaiming_uniform(a=sqrt 5) is +-1/sqrt(fan_in), the bias the same bound
    return ("uniform", 1.0 / math.sqrt(fan_in), None)


def check(value: np.ndarray, how: tuple[str, float, float | None]) -> None:
    draw, scale, forget = how
    if forget is not None:
        quarter = slice(value.shape[0] // 4, value.shape[0] // 2)
        np.testing.assert_array_equal(value[quarter], forget)
        value = np.delete(value, np.arange(value.shape[0])[quarter], axis=0)
    match draw:
        case "constant":
            np.testing.assert_array_equal(value, scale)
        case "uniform":  # a sample's std is within 4 of its standard errors (0.45/sqrt(n) of it)
            assert np.abs(value).max() <= scale * (1 + 1e-6)
            assert np.abs(value).max() > 0.9 * scale
            assert abs(value.std() / (scale / math.sqrt(3)) - 1) < 1.8 / math.sqrt(value.size), (value.std(), scale)
            assert abs(value.mean()) < 4 * scale / math.sqrt(3 * value.size)
        case "normal":
            assert abs(value.std() / scale - 1) < 0.05 and abs(value.mean()) < 0.05
        case "orthogonal":  # [gates * units, units]: orthonormal columns
            np.testing.assert_allclose(value.T @ value, np.eye(value.shape[1]), atol=1e-5)


def layer_facts(model) -> dict[str, tuple[str, int, int]]:
    """Each parameter's layer kind, units and the fan-in of the layer's `weight` (0: none)."""
    facts = {}
    for n in model.nodes:
        weight = next((p.shape for p in n.params if p.name.endswith(".weight")), ())
        for p in n.params:
            facts[p.name] = (n.layer.kind, getattr(n.layer, "units", 0), math.prod(weight[1:]) if weight else 0)
    return facts


def drawn(model) -> dict[str, dict[str, np.ndarray]]:
    torch.manual_seed(0)
    module = rnnc_torch.build_module(model)
    return {"torch": {k: v.detach().numpy() for k, v in module.ir_parameters().items()},
            "numpy": initial_weights(model)}


def training_extra(scheme: str | None) -> str:
    return "" if scheme is None else f", initializer: {scheme}"


@pytest.mark.parametrize("scheme", ["keras", "torch", "torch_orthogonal", "keras_lstm", "keras_recurrent", "hybrid", "adaptive", None])
@pytest.mark.parametrize("text", [CHAIN, GRAPH], ids=["chain", "graph"])
def test_every_parameter_follows_its_scheme_in_torch_and_numpy(text: str, scheme: str | None) -> None:
    model = model_from_text(text.format(rnn_extra="", att_extra="", training_extra=training_extra(scheme)))
    assert model.training.initializer == (scheme or "adaptive")
    facts = layer_facts(model)
    shapes = {p.name: p.shape for p in model.params}
    for where, weights in drawn(model).items():
        assert sorted(weights) == sorted(facts), where
        for name, value in weights.items():
            kind, units, fan_in = facts[name]
            assert value.shape == shapes[name]
            how = expected(kind, units, fan_in, name.rsplit(".", 1)[1], shapes[name], model.training.initializer)
            check(value.astype(np.float64), how)


ADAPTIVE_CHAIN = """
rnnc: 1
name: adaptive-chain
input: {{shape: [null], dtype: int64}}
layers:
  - {{type: embedding, vocab_size: 300, dim: 48}}
  - {{type: dropout, rate: 0.1}}
  - {{type: {rnn}, units: 64}}
  - {{type: dense, units: 20, activation: relu}}
  - {{type: dense, units: {units}, activation: {activation}}}
loss: {loss}
optimizer: adam
training: {{seed: 4, initializer: adaptive}}
"""

ADAPTIVE_GRAPH = """
rnnc: 2
name: adaptive-graph
inputs:
  words: {shape: [null], dtype: int64}
  chars: {shape: [null], dtype: int64}
layers:
  - {name: word_emb, type: embedding, vocab_size: 200, dim: 40, input: words}
  - {name: char_emb, type: embedding, vocab_size: 60, dim: 16, input: chars}
  - {name: word_rnn, type: gru, units: 32, input: word_emb}
  - {name: char_rnn, type: lstm, units: 32, input: char_emb}
  - {name: both, type: concatenate, input: [word_rnn, char_rnn]}
  - {name: label, type: dense, units: 5, activation: softmax, input: both}
  - {name: score, type: dense, units: 1, input: both}
outputs:
  label: {loss: sparse_categorical_crossentropy}
  score: {loss: mae}
optimizer: adam
training: {seed: 6, initializer: adaptive}
"""


@pytest.mark.parametrize(("text", "torch_kinds"), [
    # a gru takes torch's rules, the embedding it reads (through dropout) keras's +-0.05, a classifier's head keras's glorot
    (ADAPTIVE_CHAIN.format(rnn="gru", units=4, activation="softmax", loss="sparse_categorical_crossentropy"),
     {"layers.2": "gru"}),
    (ADAPTIVE_CHAIN.format(rnn="simple_rnn", units=1, activation="sigmoid", loss="binary_crossentropy"),
     {"layers.2": "simple_rnn"}),
    # an lstm keeps keras's rules; a regression head (mse) takes torch's, the hidden dense not
    (ADAPTIVE_CHAIN.format(rnn="lstm", units=1, activation="linear", loss="mse"), {"layers.4": "dense"}),
    (ADAPTIVE_GRAPH, {"layers.2": "gru", "layers.6": "dense"}),
], ids=["gru-classifier", "simple-rnn-classifier", "lstm-regression", "graph"])
def test_adaptive_gives_torchs_rules_to_gru_and_simple_rnn_and_regression_heads_only(
        text: str, torch_kinds: dict[str, str]) -> None:
    model = model_from_text(text)
    facts = layer_facts(model)
    for where, weights in drawn(model).items():
        for name, value in weights.items():
            kind, units, fan_in = facts[name]
            layer = name.rsplit(".", 1)[0]
            scheme = "torch" if layer in torch_kinds else "keras"
            assert torch_kinds.get(layer, kind) == kind, (where, name)
            how = expected(kind, units, fan_in, name.rsplit(".", 1)[1], value.shape, scheme)
            if how[0] == "uniform" and value.size < 64:  # a one-unit head: too few values for a spread, the bound only
                assert np.abs(value).max() <= how[1] * (1 + 1e-6), (where, name)
            else:
                check(value.astype(np.float64), how)


def test_a_layers_initializer_wins_over_the_specs() -> None:
    model = model_from_text(CHAIN.format(rnn_extra=", initializer: keras", att_extra="", training_extra=training_extra("torch")))
    rnn = next(n for n in model.nodes if n.layer.kind == "simple_rnn")
    for where, weights in drawn(model).items():
        w_hh = weights[f"layers.{rnn.index}.weight_hh"].astype(np.float64)
        np.testing.assert_allclose(w_hh.T @ w_hh, np.eye(32), atol=1e-5, err_msg=where)  # keras: orthogonal
        np.testing.assert_array_equal(weights[f"layers.{rnn.index}.bias_ih"], 0.0)
        lstm = weights["layers.2.weight_hh"]  # the spec's torch: uniform +-1/8
        assert np.abs(lstm).max() <= 0.125 and lstm.std() > 0.06
    graph = model_from_text(GRAPH.format(att_extra=", initializer: torch", training_extra=""))
    for where, weights in drawn(graph).items():
        v = weights["layers.2.v"]
        assert np.abs(v).max() > 0.05 and np.abs(v).max() <= 1 / math.sqrt(48), where  # not keras's +-0.05


def test_torch_scheme_spreads_as_torchs_own_modules() -> None:
    model = model_from_text(CHAIN.format(rnn_extra="", att_extra="", training_extra=training_extra("torch")))
    torch.manual_seed(1)
    reference = {"lstm": nn.LSTM(40, 64, bidirectional=True), "linear": nn.Linear(32, 50),
                 "conv": nn.Conv1d(48, 40, 3), "embedding": nn.Embedding(300, 48)}
    for where, ours in drawn(model).items():
        pairs = [(ours["layers.2.weight_hh_reverse"], reference["lstm"].weight_hh_l0_reverse),
                 (ours["layers.2.bias_ih"], reference["lstm"].bias_ih_l0),
                 (ours["layers.6.weight"], reference["linear"].weight), (ours["layers.6.bias"], reference["linear"].bias),
                 (ours["layers.1.weight"], reference["conv"].weight), (ours["layers.0.weight"], reference["embedding"].weight)]
        for mine, theirs in pairs:
            theirs = theirs.detach().numpy()
            assert mine.shape == theirs.shape
            assert abs(np.abs(mine).max() / np.abs(theirs).max() - 1) < 0.1, where
            assert abs(mine.std() / theirs.std() - 1) < 0.15, where


@pytest.mark.parametrize(("line", "where", "message"), [
    ("training: {{seed: 3, initializer: xavier}}", "training.initializer", "xavier"),
    ("training: {{seed: 3}}", "layers[4].initializer", "he_normal"),
])
def test_an_unknown_initializer_is_one_positioned_line(tmp_path: Path, capsys, line: str, where: str, message: str) -> None:
    text = CHAIN.replace("training: {{seed: 3{training_extra}}}", line)
    spec = tmp_path / "spec.yaml"
    spec.write_text(text.format(rnn_extra=", initializer: he_normal", att_extra="") if "he_normal" in message
                    else text.format(rnn_extra="", att_extra=""))
    assert main(["check", str(spec)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"{spec}:") and where in err[0] and message in err[0], err[0]
    assert "keras" in err[0] and "torch_orthogonal" in err[0], err[0]  # the choices
