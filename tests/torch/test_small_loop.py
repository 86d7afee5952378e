"""A small simple RNN's time loop in numpy (rnnc_torch/cpu/small_loop.py) computes what
torch's `nn.RNN` computes, in float32 to 1e-5: outputs and every gradient, tanh and
relu, sequences and final states, one and two layers; and it runs only where it
applies (one thread, float32, one direction, every row running, RNNC_GEMM not torch)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from rnnc_torch.cpu import gemm, policy, small_loop, stepwise
from rnnc_torch.cpu.threads import set_to


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with set_to(1):
        yield


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    for name in ("forward", "backward"):
        real = getattr(small_loop, name)
        monkeypatch.setattr(small_loop, name, lambda *a, _real=real, _name=name: seen.append(_name) or _real(*a))
    monkeypatch.delenv(gemm.ENV, raising=False)
    return seen


def _torch(rnn: nn.RNN, x: torch.Tensor, sequences: bool) -> torch.Tensor:
    out, h_n = rnn(x)
    return out if sequences else h_n[-1]


@pytest.mark.parametrize("sequences", [False, True])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("kind", ["tanh", "relu"])
def test_the_numpy_loop_matches_torchs_rnn(kind: str, layers: int, sequences: bool, calls: list[str]) -> None:
    torch.manual_seed(0)
    rnn = nn.RNN(3, 32, num_layers=layers, nonlinearity=kind, batch_first=True)
    x = torch.randn(32, 10, 3, requires_grad=True)
    want = _torch(rnn, x, sequences)
    weight = torch.randn_like(want)
    (want * weight).sum().backward()
    want_grads = [x.grad.clone(), *(p.grad.clone() for p in rnn.parameters())]
    x.grad = None
    rnn.zero_grad()
    got = stepwise.run(rnn, x, None, sequences, stepwise.Workspace())
    (got * weight).sum().backward()
    assert calls == ["forward"] * layers + ["backward"] * layers
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    for mine, theirs in zip([x.grad, *(p.grad for p in rnn.parameters())], want_grads, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", ["two threads", "float64", "bidirectional", "lengths", "large", "RNNC_GEMM=torch"])
def test_it_runs_only_where_it_applies(case: str, calls: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    units = 256 if case == "large" else 16  # 2 * 8 * 256^2 = 1.05e6 FLOPs per step: over the limit
    rnn = nn.RNN(3, units, batch_first=True, bidirectional=case == "bidirectional")
    x = torch.randn(8, 5, 3)
    lengths = torch.tensor([5, 4, 3, 2, 1, 5, 4, 3]) if case == "lengths" else None
    if case == "float64":
        rnn, x = rnn.double(), x.double()
    if case == "RNNC_GEMM=torch":
        monkeypatch.setenv(gemm.ENV, "torch")
    with set_to(2 if case == "two threads" else 1):
        if case == "two threads" and torch.get_num_threads() < 2:
            pytest.skip("one core")
        stepwise.run(rnn, x, lengths, False, stepwise.Workspace()).sum().backward()
    assert calls == []


def test_the_direction_axis_gives_the_same_layer(calls: list[str]) -> None:
    """`RNNScan`'s two input forms, `[T, B, F]` with 2-D weights and `[1, T, B, F]` with
    stacked ones, give the same outputs and gradients through the numpy path."""
    from rnnc_torch.cpu.scans import RNNScan

    torch.manual_seed(0)
    x = torch.randn(6, 8, 3)
    w_ih, w_hh, b_ih, b_hh = torch.randn(16, 3), 0.3 * torch.randn(16, 16), torch.randn(16), torch.randn(16)
    results = []
    for axis in (False, True):
        leaves = [t.clone().requires_grad_() for t in (x, w_ih, b_ih, b_hh, w_hh)]
        args = [t.unsqueeze(0) for t in leaves] if axis else leaves
        seq, last = RNNScan.apply(*args, (stepwise.Workspace(), "0."), False, None)
        assert seq.shape == ((1, 6, 8, 16) if axis else (6, 8, 16))
        (seq.sum() + 2 * last.sum()).backward()
        results.append([seq.reshape(6, 8, 16), *(t.grad for t in leaves)])
    assert calls == ["forward", "backward"] * 2
    for mine, theirs in zip(*results, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=0)


# --- the forward pass without gradients: validation and inference ---------------------


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("sequences", [False, True])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("kind", ["tanh", "relu"])
def test_inference_runs_in_numpy_and_matches_torchs_rnn(kind: str, layers: int, sequences: bool, bias: bool,
                                                         calls: list[str]) -> None:
    rnn = nn.RNN(3, 32, num_layers=layers, nonlinearity=kind, bias=bias, batch_first=True)
    x = torch.randn(32, 10, 3)
    for mode in (torch.no_grad, torch.inference_mode):
        with mode():
            assert policy.infers_in_numpy(rnn, x)
            got, want = small_loop.infer(rnn, x, sequences), _torch(rnn, x, sequences)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert calls == ["forward"] * layers * 2


def test_each_inference_returns_memory_of_its_own() -> None:
    rnn, x = nn.RNN(3, 8, batch_first=True), torch.randn(4, 5, 3)
    with torch.no_grad():
        first = small_loop.infer(rnn, x, False)
        kept = first.clone()
        small_loop.infer(rnn, 2 * x, False)
    torch.testing.assert_close(first, kept, rtol=0, atol=0)


@pytest.mark.parametrize("case", ["gradients on", "float64", "lengths", "bidirectional", "two threads", "large",
                                  "RNNC_GEMM=torch", "kernels: torch", "no steps", "traced", "GRU", "many rows",
                                  "dropout between layers, training mode"])
def test_inference_keeps_torchs_module_where_numpy_does_not_apply(case: str, calls: list[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    units = 256 if case == "large" else 16
    kind = nn.GRU if case == "GRU" else nn.RNN
    rnn = kind(3, units, batch_first=True, bidirectional=case == "bidirectional")
    if case.startswith("dropout"):
        rnn = nn.RNN(3, units, num_layers=2, dropout=0.5, batch_first=True).train()
    x = torch.randn(160 if case == "many rows" else 8, 0 if case == "no steps" else 5, 3)  # 160 x 16 state values
    lengths = torch.tensor([5, 4, 3, 2, 1, 5, 4, 3]) if case == "lengths" else None
    if case == "float64":
        rnn, x = rnn.double(), x.double()
    if case == "RNNC_GEMM=torch":
        monkeypatch.setenv(gemm.ENV, "torch")
    if case == "traced":
        monkeypatch.setattr(torch.jit, "is_tracing", lambda: True)
    kernels = "torch" if case == "kernels: torch" else "auto"
    with set_to(2 if case == "two threads" else 1), torch.set_grad_enabled(case == "gradients on"):
        if case == "two threads" and torch.get_num_threads() < 2:
            pytest.skip("one core")
        assert not policy.infers_in_numpy(rnn, x, lengths, kernels)


def test_an_evaluated_model_gives_torchs_outputs_through_numpy(make_model, calls: list[str]) -> None:
    import dataclasses

    import rnnc_torch
    from rnnc import ir

    model = make_model([ir.SimpleRNN(32, return_sequences=True), ir.SimpleRNN(32), ir.Dense(1, "sigmoid")], shape=(10, 1))
    x = torch.randn(32, 10, 1)
    auto = rnnc_torch.build_module(model).eval()
    plain = rnnc_torch.build_module(dataclasses.replace(model, training=dataclasses.replace(model.training, kernels="torch"))).eval()
    plain.load_state_dict(auto.state_dict())
    with torch.no_grad():
        got = auto(x)
        assert calls  # the numpy loop ran
        calls.clear()
        want = plain(x)
    assert calls == []
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
