"""The CPU training path for recurrent layers (`rnnc_torch.cpu.stepwise`) computes what
torch's own modules compute: outputs and every gradient, in float64, for each kind,
direction count, depth, fixed or variable length, sequences or final states, with and
without bias."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnc_torch
from rnnc import ir
from rnnc.shapes import infer_nodes
from rnnc_torch.cpu import policy, stepwise
from rnnc_torch.cpu.threads import set_to

LENGTHS = torch.tensor([7, 3, 1, 5])


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny tensors: on a busy two-core machine a spinning thread pool makes them slow."""
    with set_to(1):
        yield


def reference(rnn: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor | None, sequences: bool) -> torch.Tensor:
    """torch's module as rnnc's block used it before: packed when bidirectional with
    lengths; otherwise on zero-padded input, the last real step taken by index."""
    directions = 2 if rnn.bidirectional else 1
    if lengths is not None and directions == 2:
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, state = rnn(packed)
        if sequences:
            return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]
    else:
        real = None if lengths is None else (torch.arange(x.shape[1])[None, :] < lengths[:, None])[..., None]
        out, state = rnn(x if real is None else x * real)
        if sequences:
            return out
        if lengths is not None:
            return out[torch.arange(x.shape[0]), lengths - 1]
    h_n = state[0] if isinstance(state, tuple) else state
    return h_n[-directions:].transpose(0, 1).reshape(x.shape[0], -1)


CASES = [
    (kind, directions, layers, variable, sequences, bias)
    for kind, directions, layers, variable, sequences, bias in itertools.product(
        ("tanh", "relu", "lstm", "gru"), (1, 2), (1, 2), (False, True), (False, True), (True, False)
    )
    if not (kind == "relu" and variable)  # relu with lengths keeps packing (see recurrent.py)
]


@pytest.mark.parametrize(("kind", "directions", "layers", "variable", "sequences", "bias"), CASES,
                         ids=["-".join(map(str, case)) for case in CASES])
def test_values_and_gradients_match_torch(kind: str, directions: int, layers: int, variable: bool, sequences: bool, bias: bool) -> None:
    torch.manual_seed(0)
    make = {"lstm": nn.LSTM, "gru": nn.GRU}.get(kind, nn.RNN)
    extra = {"nonlinearity": kind} if make is nn.RNN else {}
    rnn = make(3, 5, num_layers=layers, batch_first=True, bidirectional=directions == 2, bias=bias, **extra).double()
    x = torch.randn(4, 7, 3, dtype=torch.float64, requires_grad=True)
    lengths = LENGTHS if variable else None
    real = (torch.arange(7)[None, :] < LENGTHS[:, None])[..., None] if variable and sequences else torch.tensor(True)

    expected = reference(rnn, x, lengths, sequences)
    weight = torch.randn_like(expected) * real  # steps past a length are nobody's business
    (expected * weight).sum().backward()
    want = [x.grad.clone(), *(p.grad.clone() for p in rnn.parameters())]
    x.grad = None
    rnn.zero_grad()

    got = stepwise.run(rnn, x, lengths, sequences, stepwise.Workspace())
    (got * weight).sum().backward()
    torch.testing.assert_close(got * real, expected * real, rtol=0, atol=1e-10)
    for name, a, b in zip(["x", *(n for n, _ in rnn.named_parameters())], [x.grad, *(p.grad for p in rnn.parameters())], want, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10, msg=name)


def test_the_path_is_taken_only_for_cpu_float32_training() -> None:
    rnn = nn.GRU(3, 8, bidirectional=True, batch_first=True)
    x = torch.zeros(2, 4, 3)
    assert policy.applies(rnn, x)
    assert not policy.applies(rnn, x.double())
    with torch.no_grad():
        assert not policy.applies(rnn, x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not policy.applies(rnn, x)


@pytest.mark.parametrize(("rnn", "batch", "taken"), [
    (nn.RNN(4, 8), 2, True),  # torch records each step of a simple RNN
    (nn.LSTM(4, 8, bidirectional=True), 2, True),  # and runs directions one after the other
    (nn.LSTM(4, 64), 32, False),  # a small LSTM: oneDNN's fused kernel has less overhead
    (nn.LSTM(4, 128), 64, "measured"),  # large one-direction layers: whichever measured faster here
    (nn.GRU(4, 64), 64, "measured"),
])
@pytest.mark.parametrize("forced", ["loop", "torch"])
def test_the_path_is_taken_where_it_pays(rnn: nn.RNNBase, batch: int, taken: bool | str, forced: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RNNC_LOOP", forced)  # what loop_choice measured (tests/torch/test_loop_choice.py)
    assert policy.pays(rnn, batch) is (forced == "loop" if taken == "measured" else taken)


def test_a_training_module_computes_what_the_evaluating_one_does() -> None:
    nodes = [ir.Embedding(20, 4, mask_zero=True), ir.GRU(6, bidirectional=True, return_sequences=True), ir.GRU(6, bidirectional=True), ir.Dense(2)]
    input_ = ir.Input((None,), "int64")
    resolved, problems = infer_nodes(input_, nodes)
    assert not problems
    model = ir.Model("t", input_, tuple(resolved), ir.Loss("mse"), ir.Optimizer("adam"))
    module = rnnc_torch.build_module(model)
    ids = torch.tensor([[3, 4, 5, 0, 0], [7, 1, 2, 9, 4]])
    trained = module.train()(ids)  # grad on: the stepwise path
    evaluated = module.eval()(ids)
    torch.testing.assert_close(trained, evaluated, rtol=0, atol=1e-5)


def test_a_second_backward_pass_is_refused() -> None:
    rnn = nn.LSTM(3, 4, batch_first=True, bidirectional=True)
    out = stepwise.run(rnn, torch.randn(2, 5, 3), None, False, stepwise.Workspace())
    out.sum().backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="one backward pass per forward pass"):
        out.sum().backward()


def test_forward_passes_in_flight_get_buffers_of_their_own() -> None:
    rnn = nn.GRU(3, 4, batch_first=True, bidirectional=True)
    workspace = stepwise.Workspace()
    x1, x2 = torch.randn(2, 5, 3), torch.randn(2, 5, 3)
    y1 = stepwise.run(rnn, x1, None, True, workspace)
    y2 = stepwise.run(rnn, x2, None, True, workspace)  # before y1's backward pass
    (y1.sum() + 2 * y2.sum()).backward()
    got = [p.grad.clone() for p in rnn.parameters()]
    rnn.zero_grad()
    (rnn(x1)[0].sum() + 2 * rnn(x2)[0].sum()).backward()
    for a, b in zip(got, (p.grad for p in rnn.parameters()), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
