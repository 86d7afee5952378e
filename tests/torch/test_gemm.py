"""cpu/gemm.py: each route computes torch.mm's product (1e-5), the choice is measured once,
kept per machine and honoured, RNNC_GEMM overrides it, and a scan on either route computes
what torch's own recurrent modules do and trains to the same weights twice for a seed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from rnnc.errors import UsageError
from rnnc_torch.cpu import gemm, small_loop, stepwise

# (a, b) layouts as the scans use them: a step's recurrent product (W^T a transposed
# view), the backward step, the input projection, and the weight gradients (d^T a view).
SHAPES = {
    "step": lambda: (torch.randn(64, 128), torch.randn(512, 128).mT),
    "step-backward": lambda: (torch.randn(64, 512), torch.randn(512, 128)),
    "projection": lambda: (torch.randn(640, 16), torch.randn(512, 16).mT),
    "weight-gradient": lambda: (torch.randn(640, 512).mT, torch.randn(640, 128)),
}


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(gemm.ENV, raising=False)
    gemm.forget()
    yield
    gemm.forget()


def _reference(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    return a.double().numpy() @ b.double().numpy()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("route", gemm.ROUTES)
def test_each_route_computes_the_product(route: str, shape: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(gemm.ENV, route)
    a, b = SHAPES[shape]()
    bias = torch.randn(b.shape[1])
    out = torch.full((a.shape[0], b.shape[1]), np.nan)
    product = gemm.pick(a, b, out=out)
    assert product is ({"torch": torch.mm, "openblas": gemm._openblas_mm}[route])
    product(a, b, out=out)
    scale = np.abs(_reference(a, b)).max()
    np.testing.assert_allclose(out.numpy(), _reference(a, b), rtol=0, atol=1e-5 * scale)
    np.testing.assert_allclose(gemm.pick(a, b, bias)(bias, a, b).numpy(), _reference(a, b) + bias.double().numpy(), rtol=0,
                               atol=1e-5 * scale)
    into = torch.randn(a.shape[0], b.shape[1])
    expected = into.double().numpy() + _reference(a, b)
    gemm.pick_accumulate(into, a, b)(into, a, b)
    np.testing.assert_allclose(into.numpy(), expected, rtol=0, atol=1e-5 * scale)


@pytest.fixture
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_the_choice_is_measured_once_and_kept_in_the_machines_cache(one_thread: None, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("threadpoolctl")
    measured: list[tuple[int, ...]] = []
    monkeypatch.setattr(gemm, "_measure", lambda a, b, bias, accumulate=False: measured.append(tuple(a.shape)) or "openblas")
    a, b = SHAPES["projection"]()
    assert gemm.pick(a, b) is gemm._openblas_mm
    assert gemm.pick(a, b) is gemm._openblas_mm
    assert measured == [(640, 16)]
    saved = json.loads(gemm.cache_path().read_text())
    assert saved["machine"]["cpu"] == gemm.machine()["cpu"] and saved["machine"]["torch"] == torch.__version__
    assert list(saved["choices"].values()) == ["openblas"]
    gemm.forget()  # a new process: the file decides, nothing is measured again
    assert gemm.pick(a, b) is gemm._openblas_mm
    assert measured == [(640, 16)]
    monkeypatch.setenv(gemm.ENV, "torch")  # the override beats the cache
    assert gemm.pick(a, b) is torch.mm


def test_a_cached_torch_choice_is_honoured(one_thread: None, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = SHAPES["step"]()
    path = gemm.cache_path()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"choices": {gemm._key(a, b, None): "torch"}}))
    monkeypatch.setattr(gemm, "_measure", lambda *args, **kwargs: pytest.fail("measured although the cache had the answer"))
    assert gemm.pick(a, b) is torch.mm


def test_auto_keeps_torch_on_more_than_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenBLAS's spinning pool beside torch's would slow the next torch operation."""
    if torch.get_num_threads() < 2:
        pytest.skip("one core")
    monkeypatch.setattr(gemm, "_measure", lambda *args, **kwargs: "openblas")
    a, b = SHAPES["projection"]()
    assert gemm.pick(a, b) is torch.mm
    assert gemm.pick_accumulate(torch.zeros(640, 512), a, b) is gemm._torch_accumulate


def test_products_numpy_cannot_view_stay_on_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(gemm.ENV, "openblas")
    assert gemm.pick(torch.randn(4, 3).double(), torch.randn(3, 5).double()) is torch.mm
    assert gemm.pick(torch.randn(2, 4, 3), torch.randn(2, 3, 5)) is torch.mm


def test_a_bad_setting_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(gemm.ENV, "mkl")
    with pytest.raises(UsageError, match=r"^RNNC_GEMM: expected auto, torch or openblas, got 'mkl'$"):
        gemm.pick(*SHAPES["step"]())


def _lstm_step(seed: int) -> tuple[nn.LSTM, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    rnn = nn.LSTM(8, 32, batch_first=True)
    x = torch.randn(64, 12, 8, requires_grad=True)
    return rnn, x, torch.randn(64, 32)


@pytest.mark.parametrize("route", gemm.ROUTES)
@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH"])
def test_a_scan_on_either_route_matches_torchs_module(route: str, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """float32 outputs and gradients of rnnc's loop against torch's own module (1e-5)."""
    monkeypatch.setenv(gemm.ENV, route)
    # On one intra-op thread (a 1-core machine, OMP_NUM_THREADS=1, --threads 1) a simple
    # RNN this small runs small_loop's numpy loop instead, which matches the threads once a
    # loop, not before each step's product (tests/torch/test_small_loop.py tests it): this
    # tests the scan's own loop on each route, on any thread count.
    monkeypatch.setattr(small_loop, "applies", lambda *args: False)
    calls: list[None] = []
    monkeypatch.setattr(gemm, "_match_threads", lambda: calls.append(None))  # runs before each numpy product
    torch.manual_seed(0)
    rnn = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN_TANH": nn.RNN}[mode](8, 32, batch_first=True)
    x = torch.randn(64, 12, 8, requires_grad=True)
    grad_out = torch.randn(64, 32)
    ours = stepwise.run(rnn, x, None, False, stepwise.Workspace())
    (ours * grad_out).sum().backward()
    mine = [x.grad.clone(), *(p.grad.clone() for p in rnn.parameters())]
    x.grad = None
    rnn.zero_grad()
    theirs = rnn(x)[0][:, -1]
    (theirs * grad_out).sum().backward()
    assert (len(calls) >= 2 * 12) == (route == "openblas")  # every step's products, forward and backward
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    for got, want in zip(mine, [x.grad, *(p.grad for p in rnn.parameters())], strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("route", gemm.ROUTES)
def test_training_on_a_route_is_deterministic_for_a_seed(route: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(gemm.ENV, route)
    runs = []
    for _ in range(2):
        rnn, x, grad_out = _lstm_step(3)
        optimizer = torch.optim.Adam(rnn.parameters(), lr=0.01)
        for _ in range(3):
            optimizer.zero_grad()
            (stepwise.run(rnn, x, None, False, stepwise.Workspace()) * grad_out).sum().backward()
            optimizer.step()
        runs.append([p.detach().clone() for p in rnn.parameters()])
    for first, second in zip(*runs, strict=True):
        assert torch.equal(first, second)
