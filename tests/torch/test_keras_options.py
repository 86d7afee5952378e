"""The torch backend's Keras recurrent options: where each layer runs, and recurrent_dropout.

The cells torch lacks run in `keras_cells.KerasCellBlock`, a time loop; its structure
(lengths, directions, merge, initial and final state, gradients) is pinned here against
torch's own `nn.LSTM`/`nn.GRU`/`nn.RNN` on the cells both compute, and the cells
themselves against numpy in tests/onnx/test_keras_options_onnx.py. `recurrent_dropout`
has Keras's meaning: one mask per sequence (and gate block, and direction) on the state
entering the recurrent product, reused at every step, while training only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest
import torch

from rnnc import ir
from rnnc_torch.block import zero_padding
from rnnc_torch.keras_cells import KerasCellBlock
from rnnc_torch.recurrent import RecurrentBlock

MakeModel = Callable[..., ir.Model]  # the make_model fixture (conftest.py)


def _pair(make_model: MakeModel, layer: ir.Recurrent) -> tuple[RecurrentBlock, KerasCellBlock]:
    """torch's block and the time loop for `layer`, with the same weights."""
    node = make_model([layer]).nodes[0]
    native, loop = RecurrentBlock([node]), KerasCellBlock(node)
    with torch.no_grad():
        for name, param in loop.ir_parameters().items():
            param.copy_(native.ir_parameters()[name])
    return native, loop


@pytest.mark.parametrize("layer", [
    ir.LSTM(units=4, bidirectional=True, return_sequences=True),
    ir.GRU(units=5, bidirectional=True),
    ir.GRU(units=3, return_sequences=True, use_bias=False),
    ir.SimpleRNN(units=4, bidirectional=True, merge_mode="sum", return_sequences=True),
    ir.LSTM(units=3, bidirectional=True, merge_mode="ave"),
], ids=lambda layer: layer.describe())
def test_the_time_loop_equals_torchs_module_on_its_cells(make_model: MakeModel, layer: ir.Recurrent) -> None:
    native, loop = _pair(make_model, layer)
    x = torch.randn(5, 8, 3, requires_grad=True)
    lengths = torch.tensor([8, 3, 1, 6, 0])
    want, _ = native(x, lengths)
    if want.dim() == 3:  # torch's forward-only module runs on past a length; the model zeroes those steps
        want = zero_padding(want, lengths)
    got, got_lengths = loop(x, lengths)
    assert got_lengths is lengths
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    (grad_want,) = torch.autograd.grad(want.square().sum(), x)
    (grad_got,) = torch.autograd.grad(got.square().sum(), x)
    torch.testing.assert_close(grad_got, grad_want, atol=1e-5, rtol=0)


def test_forward_state_starts_and_ends_where_torchs_does(make_model: MakeModel) -> None:
    native, loop = _pair(make_model, ir.LSTM(units=4, return_sequences=True))
    x, lengths = torch.randn(3, 6, 3), torch.tensor([6, 2, 4])
    initial = (torch.randn(1, 3, 4), torch.randn(1, 3, 4))
    want_y, _, (want_h, want_c) = native.forward_state(x, lengths, initial)
    got_y, _, (got_h, got_c) = loop.forward_state(x, lengths, initial)
    torch.testing.assert_close(got_y, want_y, atol=1e-5, rtol=0)
    torch.testing.assert_close(got_h, want_h, atol=1e-5, rtol=0)
    torch.testing.assert_close(got_c, want_c, atol=1e-5, rtol=0)


def test_layers_with_keras_cells_run_the_loop_and_are_never_fused(make_model: MakeModel) -> None:
    import rnnc_torch

    model = make_model([
        ir.GRU(units=4, return_sequences=True),
        ir.GRU(units=4, return_sequences=True, reset_after=False),
        ir.GRU(units=4, recurrent_activation="hard_sigmoid"),
    ])
    blocks = list(rnnc_torch.build_module(model).blocks)
    assert [type(b).__name__ for b in blocks] == ["RecurrentBlock", "KerasCellBlock", "KerasCellBlock"]
    assert "layers.1.bias_hh" not in blocks[1].ir_parameters()  # reset_after false: Keras's one bias
    assert set(blocks[1].ir_parameters()) == {"layers.1.weight_ih", "layers.1.weight_hh", "layers.1.bias_ih"}


def _identity_relu_rnn(make_model: MakeModel, rate: float, units: int, bidirectional: bool = False) -> KerasCellBlock:
    """h_t = relu(x_t + m * h_(t-1)): with x = 1 at step 0 and 0 after, h_T = m^T per unit."""
    layer = ir.SimpleRNN(units=units, activation="relu", recurrent_dropout=rate, use_bias=False,
                         bidirectional=bidirectional, return_sequences=bidirectional)
    block = KerasCellBlock(make_model([layer], shape=(None, 1)).nodes[0])
    with torch.no_grad():
        for name, param in block.weights.items():
            param.copy_(torch.ones(units, 1) if name.startswith("weight_ih") else torch.eye(units))
    return block


def _pulse(batch: int, steps: int) -> torch.Tensor:
    x = torch.zeros(batch, steps, 1)
    x[:, 0] = 1.0
    return x


def test_recurrent_dropout_is_one_mask_per_sequence_reused_at_every_step(make_model: MakeModel) -> None:
    rate, steps, units = 0.3, 6, 2000
    block = _identity_relu_rnn(make_model, rate, units).train()
    torch.manual_seed(0)
    h, _ = block(_pulse(4, steps), None)
    # one mask reused: each unit is 0 or (1 / (1 - rate))^(steps - 1); fresh masks per
    # step would keep only (1 - rate)^(steps - 1) = 17% of the units
    kept = (h != 0).double()
    assert torch.all((h == 0) | torch.isclose(h, torch.tensor((1 / (1 - rate)) ** (steps - 1)), rtol=1e-5))
    assert abs(kept.mean().item() - (1 - rate)) < 0.02
    assert not torch.equal(kept[0], kept[1])  # each sequence draws its own


def test_recurrent_dropout_draws_for_each_direction(make_model: MakeModel) -> None:
    block = _identity_relu_rnn(make_model, 0.5, 500, bidirectional=True).train()
    x = torch.zeros(2, 4, 1)
    x[:, 0] = x[:, -1] = 1.0  # a pulse at each direction's first step
    h, _ = block(x, None)
    forward, backward = h[:, 2, :500], h[:, 1, 500:]  # two steps after each direction's pulse: m^2
    assert not torch.equal(forward != 0, backward != 0)
    assert abs((forward != 0).double().mean().item() - 0.5) < 0.05


def test_recurrent_dropout_is_deterministic_for_a_seed_and_off_at_inference(make_model: MakeModel) -> None:
    layer = ir.LSTM(units=6, recurrent_dropout=0.4, return_sequences=True)
    model = make_model([layer])
    plain = make_model([dataclasses.replace(layer, recurrent_dropout=0.0)])
    import rnnc_torch

    module, reference = rnnc_torch.build_module(model), rnnc_torch.build_module(plain)
    reference.load_ir_state(module.ir_state())
    x, lengths = torch.randn(3, 7, 3), torch.tensor([7, 4, 2])
    module.train()
    runs = []
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        runs.append(module(x, lengths).detach())
    assert torch.equal(runs[0], runs[1])
    assert not torch.allclose(runs[0], runs[2])
    module.eval()
    reference.eval()
    with torch.no_grad():
        torch.testing.assert_close(module(x, lengths), reference(x, lengths), atol=1e-6, rtol=0)
        assert not torch.allclose(runs[0], module(x, lengths))


def test_recurrent_dropout_trains(make_model: MakeModel) -> None:
    import rnnc_torch

    model = make_model([ir.GRU(units=4, recurrent_dropout=0.25, reset_after=False), ir.Dense(units=1)])
    module = rnnc_torch.build_module(model).train()
    x, y = torch.randn(8, 5, 3), torch.randn(8, 1)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(module(x, None), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])


def test_merge_mode_is_the_same_on_the_cpu_training_path_and_off_it(make_model: MakeModel) -> None:
    """While training on a CPU a bidirectional layer runs rnnc's own loop (cpu.run); the
    merge applies to its output alike."""
    from rnnc_torch import cpu

    layer = ir.GRU(units=6, bidirectional=True, merge_mode="mul", return_sequences=True)
    block = RecurrentBlock([make_model([layer]).nodes[0]]).train()
    x, lengths = torch.randn(4, 7, 3, requires_grad=True), torch.tensor([7, 5, 1, 3])
    assert cpu.applies(block.rnn, x, lengths)
    fast, _ = block(x, lengths)
    with torch.no_grad():
        plain, _ = block(x, lengths)  # no gradients: torch's own module
    assert fast.shape == (4, 7, 6)
    torch.testing.assert_close(zero_padding(fast, lengths), zero_padding(plain, lengths), atol=1e-5, rtol=0)


def test_a_keras_cell_counts_as_a_time_loop_for_sharding(make_model: MakeModel) -> None:
    from rnnc_torch.cpu.policy import runs_a_time_loop

    assert not runs_a_time_loop(make_model([ir.GRU(units=4)]), 16)
    assert runs_a_time_loop(make_model([ir.GRU(units=4, reset_after=False)]), 16)
