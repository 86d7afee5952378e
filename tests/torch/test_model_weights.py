"""Parameters under the IR's names: exact round trips, checked loading, Keras-like init."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch

import rnnc_torch
from rnnc import ir
from rnnc.artifacts import load_weights, save_weights
from rnnc.errors import ArtifactError, UsageError

MODELS = {
    "lstm_bidir_stack": ([ir.LSTM(4, return_sequences=True, bidirectional=True), ir.LSTM(4, bidirectional=True), ir.Dense(2)], (None, 3), "float32"),
    "gru_no_bias": ([ir.GRU(3, use_bias=False, return_sequences=True), ir.GRU(3, use_bias=False)], (None, 3), "float32"),
    "simple_rnn_relu": ([ir.SimpleRNN(5, activation="relu"), ir.Dense(1, use_bias=False)], (6, 2), "float32"),
    "embedding_conv_norm": ([ir.Embedding(9, 4), ir.Conv1D(5, 3, stride=2), ir.LayerNorm(), ir.Pool("mean"), ir.Dense(3)], (None,), "int64"),
}


def fresh(make_model, key: str, fuse: bool = True, seed: int = 0) -> rnnc_torch.SpecModule:
    layers, shape, dtype = MODELS[key]
    torch.manual_seed(seed)
    return rnnc_torch.build_module(make_model(layers, shape, dtype), fuse=fuse)


def sample(module: rnnc_torch.SpecModule) -> torch.Tensor:
    if module.model.input.dtype == "int64":
        return torch.randint(0, 9, (2, 6))
    return torch.randn(2, 6, module.model.input.shape[-1])


@pytest.mark.parametrize("key", MODELS)
def test_ir_state_holds_every_ir_parameter_as_float32(make_model, key):
    module = fresh(make_model, key)
    state = module.ir_state()
    assert list(state) == [p.name for p in module.model.params]
    for param in module.model.params:
        assert state[param.name].shape == param.shape
        assert state[param.name].dtype == np.float32


@pytest.mark.parametrize("key", MODELS)
@pytest.mark.parametrize(("fuse_from", "fuse_to"), [(True, True), (True, False), (False, True)])
def test_ir_state_round_trip_is_exact(make_model, key, fuse_from, fuse_to):
    source = fresh(make_model, key, fuse=fuse_from, seed=1).eval()
    target = fresh(make_model, key, fuse=fuse_to, seed=2).eval()
    state = source.ir_state()
    target.load_ir_state(state)
    for name, value in target.ir_state().items():
        np.testing.assert_array_equal(value, state[name], err_msg=name)
    x = sample(source)
    torch.testing.assert_close(target(x), source(x), rtol=0, atol=1e-6)


def test_ir_state_is_a_copy(make_model):
    module = fresh(make_model, "gru_no_bias")
    state = module.ir_state()
    state["layers.0.weight_ih"][...] = 42.0
    assert not np.any(module.ir_state()["layers.0.weight_ih"] == 42.0)


def test_round_trip_through_a_safetensors_file(make_model, tmp_path):
    module = fresh(make_model, "lstm_bidir_stack")
    save_weights(tmp_path / "weights.safetensors", module.ir_state())
    other = fresh(make_model, "lstm_bidir_stack", seed=5)
    other.load_ir_state(load_weights(tmp_path / "weights.safetensors", module.model))
    for name, value in other.ir_state().items():
        np.testing.assert_array_equal(value, module.ir_state()[name])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.pop("layers.2.bias"), "missing layers.2.bias"),
        (lambda s: s.update({"layers.9.weight": np.zeros(1, np.float32)}), "unexpected layers.9.weight"),
        (lambda s: s.update({"layers.0.weight_hh": np.zeros((16, 5), np.float32)}), "layers.0.weight_hh has shape [16, 5], the spec needs [16, 4]"),
    ],
    ids=["missing", "unexpected", "wrong_shape"],
)
def test_load_ir_state_refuses_weights_that_do_not_fit(make_model, edit, message):
    module = fresh(make_model, "lstm_bidir_stack")
    state = module.ir_state()
    edit(state)
    before = module.ir_state()
    with pytest.raises(ArtifactError, match="^run/weights.safetensors: .*" + re.escape(message)):
        module.load_ir_state(state, origin="run/weights.safetensors")
    for name, value in module.ir_state().items():  # nothing half-loaded
        np.testing.assert_array_equal(value, before[name])


def test_same_seed_builds_the_same_weights(make_model):
    first, second = fresh(make_model, "lstm_bidir_stack", seed=3), fresh(make_model, "lstm_bidir_stack", seed=3)
    for name, value in first.ir_state().items():
        np.testing.assert_array_equal(value, second.ir_state()[name])
    assert not np.array_equal(fresh(make_model, "lstm_bidir_stack", seed=4).ir_state()["layers.0.weight_ih"], first.ir_state()["layers.0.weight_ih"])


def test_keras_init_of_an_lstm(make_model):
    state = rnnc_torch.build_module(make_model([ir.LSTM(4, bidirectional=True)], (None, 3))).ir_state()
    for suffix in ("", "_reverse"):
        forget = np.zeros(16, np.float32)
        forget[4:8] = 1.0  # gate order i, f, g, o: only the forget gate's bias is 1
        np.testing.assert_array_equal(state[f"layers.0.bias_ih{suffix}"], forget)
        np.testing.assert_array_equal(state[f"layers.0.bias_hh{suffix}"], np.zeros(16, np.float32))
        w_hh = state[f"layers.0.weight_hh{suffix}"]  # orthogonal: orthonormal columns
        np.testing.assert_allclose(w_hh.T @ w_hh, np.eye(4), atol=1e-5)
        limit = np.sqrt(6 / (3 + 16))  # glorot_uniform over fan_in 3, fan_out 4*4
        assert np.abs(state[f"layers.0.weight_ih{suffix}"]).max() <= limit


def test_keras_init_of_dense_and_embedding(make_model):
    model = make_model([ir.Embedding(50, 8), ir.Dense(3)], (None,), "int64")
    model = dataclasses.replace(model, training=dataclasses.replace(model.training, initializer="keras"))
    state = rnnc_torch.build_module(model).ir_state()
    assert np.abs(state["layers.0.weight"]).max() <= 0.05
    assert np.abs(state["layers.1.weight"]).max() <= np.sqrt(6 / (8 + 3))
    np.testing.assert_array_equal(state["layers.1.bias"], np.zeros(3, np.float32))


def test_backend_plugin_object():
    assert rnnc_torch.backend.name == "torch"
    assert rnnc_torch.backend.capabilities == frozenset({"train", "infer", "export"})


def test_backend_compile_loads_weights_in_eval_mode(make_model):
    module = fresh(make_model, "gru_no_bias", seed=1)
    compiled = rnnc_torch.backend.compile(module.model, module.ir_state())
    assert isinstance(compiled, rnnc_torch.SpecModule) and not compiled.training
    x = sample(module)
    torch.testing.assert_close(compiled(x), module.eval()(x), rtol=0, atol=0)


def test_backend_compile_without_weights_and_unfused(make_model):
    model = make_model(*MODELS["gru_no_bias"])
    compiled = rnnc_torch.backend.compile(model, fuse=False)
    assert sum(isinstance(m, torch.nn.GRU) for m in compiled.modules()) == 2


def test_backend_compile_refuses_unknown_options(make_model):
    with pytest.raises(UsageError, match="unknown option.*opset"):
        rnnc_torch.backend.compile(make_model(*MODELS["gru_no_bias"]), opset=21)
