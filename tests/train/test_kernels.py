"""`training.kernels`: `torch` trains on torch's own kernels only (no rnnc time loop, no
sharded steps, no thread policy) and learns the same function as `auto`."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from rnnc import ir
from rnnc.data import from_arrays
from rnnc_torch.cpu import policy, scans
from rnnc_torch.model import build_module
from rnnc_torch.trainer import Trainer

from tiny_models import binary_data, tiny_model

CPU = torch.device("cpu")
MODELS = {  # each runs rnnc's time loop under auto
    "simple_rnn": [ir.SimpleRNN(8), ir.Dense(1, "sigmoid")],
    "bidirectional gru": [ir.GRU(8, bidirectional=True), ir.Dense(1, "sigmoid")],
    "bidirectional lstm": [ir.LSTM(8, bidirectional=True), ir.Dense(1, "sigmoid")],
}


@pytest.fixture
def scan_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the scans whose forward pass ran, in order."""
    calls: list[str] = []
    for scan in (scans.RNNScan, scans.LSTMScan, scans.GRUScan):
        original = scan.forward

        def spy(*args, _original=original, _name=scan.__name__):  # type: ignore[no-untyped-def]
            calls.append(_name)
            return _original(*args)

        monkeypatch.setattr(scan, "forward", staticmethod(spy))
    return calls


def train(model: ir.Model) -> list[float]:
    x, y = binary_data(n=64)
    trainer = Trainer(model)
    trainer.run(from_arrays(model, x, y), progress=False)
    return [logs["loss"] for logs in trainer.history]


@pytest.mark.parametrize("name", list(MODELS))
def test_torch_kernels_never_enter_the_time_loop_and_learn_the_same_function(name: str, scan_calls: list[str]) -> None:
    auto = train(tiny_model(MODELS[name], kernels="auto"))
    assert scan_calls  # the spy sees the loop where it runs
    scan_calls.clear()
    plain = train(tiny_model(MODELS[name], kernels="torch"))
    assert scan_calls == []
    np.testing.assert_allclose(plain, auto, rtol=1e-4)


@pytest.fixture
def two_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_torch_kernels_keep_one_step_and_torchs_thread_count(two_threads: None) -> None:
    sharded = tiny_model([ir.LSTM(64), ir.Dense(1, "sigmoid")], shape=(12, 3), batch_size=64)  # 2 shards under auto
    tiny = tiny_model()  # one thread under auto
    for model, auto_shards, auto_threads in ((sharded, 2, None), (tiny, 1, 1)):
        plain = tiny_model(list(n.layer for n in model.nodes), shape=model.input.shape,
                           batch_size=model.training.batch_size, kernels="torch")
        assert (policy.shard_count(model, build_module(model), CPU), policy.training_threads(model, CPU)) == (
            auto_shards, auto_threads)
        assert (policy.shard_count(plain, build_module(plain), CPU), policy.training_threads(plain, CPU)) == (1, None)
        trainer = Trainer(plain)
        assert (trainer.shards, trainer.threads) == (1, None)


def gradient_penalty(model: ir.Model) -> torch.Tensor:
    """Backward through the norm of the input gradient: a second-order gradient."""
    module = build_module(model).train()
    x = torch.randn(4, 6, 2, requires_grad=True)
    (grad,) = torch.autograd.grad(module(x).sum(), x, create_graph=True)
    grad.pow(2).sum().backward()
    return torch.stack([p.grad.abs().sum() for p in module.parameters() if p.grad is not None])


@pytest.mark.parametrize("name", list(MODELS))
def test_higher_order_gradients_name_the_setting_that_has_them(name: str, scan_calls: list[str]) -> None:
    with pytest.raises(RuntimeError, match="first-order gradients only; .* train with training.kernels: torch"):
        gradient_penalty(tiny_model(MODELS[name]))
    assert scan_calls  # the error came from rnnc's loop
    assert torch.isfinite(gradient_penalty(tiny_model(MODELS[name], kernels="torch"))).all()
