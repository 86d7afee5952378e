"""rnnc's CPU time loop with lengths runs each step on the rows still running only (the
rows sorted longest first, cpu/stepwise.py): in float32, on either GEMM route, its
outputs and every gradient match torch's packed module to 1e-5, rows that stop early,
equal lengths, an already sorted batch and an empty sequence included; and stale
values in reused buffers never reach a result."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnc_torch.cpu import gemm, stepwise
from rnnc_torch.cpu.threads import set_to

LENGTHS = {
    "ragged": [9, 2, 9, 5, 1, 7, 3, 9],
    "sorted": [9, 8, 8, 6, 4, 4, 2, 1],
    "full": [9] * 8,
}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with set_to(1):
        yield


def _packed(rnn: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor, sequences: bool) -> torch.Tensor:
    """torch's module on the packed batch: the independent reference."""
    out, state = rnn(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    if sequences:
        return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]
    h_n = state[0] if isinstance(state, tuple) else state
    directions = 2 if rnn.bidirectional else 1
    return h_n[-directions:].transpose(0, 1).reshape(x.shape[0], -1)


def _make(kind: str, directions: int, layers: int) -> nn.RNNBase:
    torch.manual_seed(0)
    make = {"lstm": nn.LSTM, "gru": nn.GRU, "tanh": nn.RNN}[kind]
    return make(6, 16, num_layers=layers, batch_first=True, bidirectional=directions == 2)


def _grads(rnn: nn.RNNBase, x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor) -> list[torch.Tensor]:
    x.grad = None
    rnn.zero_grad()
    (y * weight).sum().backward()
    return [x.grad.clone(), *(p.grad.clone() for p in rnn.parameters())]


@pytest.mark.parametrize("route", gemm.ROUTES)
@pytest.mark.parametrize("sequences", [False, True])
@pytest.mark.parametrize("lengths", list(LENGTHS))
@pytest.mark.parametrize(("kind", "directions", "layers"), [("gru", 2, 2), ("lstm", 2, 1), ("tanh", 2, 1), ("gru", 1, 1), ("lstm", 1, 2)])
def test_running_rows_only_matches_torchs_packed_module(kind: str, directions: int, layers: int, lengths: str,
                                                         sequences: bool, route: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(gemm.ENV, route)
    rnn = _make(kind, directions, layers)
    found = torch.tensor(LENGTHS[lengths])
    x = torch.randn(8, 9, 6, requires_grad=True)
    with torch.no_grad():  # junk past each length must not matter
        x[torch.arange(9)[None, :] >= found[:, None]] = float("nan")
    real = (torch.arange(9)[None, :] < found[:, None])[..., None]
    clean = torch.where(real, x, 0.0)
    want = _packed(rnn, clean, found, sequences)
    weight = torch.randn_like(want) * (real if sequences else 1)
    want_grads = _grads(rnn, x, want, weight)
    workspace = stepwise.Workspace()
    for _ in range(2):  # the second pass reuses the first one's buffers
        got = stepwise.run(rnn, x, found, sequences, workspace)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        for mine, theirs in zip(_grads(rnn, x, got, weight), want_grads, strict=True):
            torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("kind", "directions"), [("gru", 2), ("lstm", 1), ("tanh", 2)])
def test_an_empty_sequence_yields_zeros_and_no_gradient(kind: str, directions: int) -> None:
    rnn = _make(kind, directions, 1)
    lengths = torch.tensor([4, 0, 2])
    x = torch.randn(3, 4, 6, requires_grad=True)
    got = stepwise.run(rnn, x, lengths, False, stepwise.Workspace())
    assert torch.equal(got[1], torch.zeros_like(got[1]))
    want = _packed(rnn, x[[0, 2]], lengths[[0, 2]], False)
    torch.testing.assert_close(got[[0, 2]], want, rtol=1e-5, atol=1e-5)
    got.sum().backward()
    assert torch.equal(x.grad[1], torch.zeros_like(x.grad[1]))
    assert torch.equal(x.grad[2, 2:], torch.zeros_like(x.grad[2, 2:]))
