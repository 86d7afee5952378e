"""Recurrent layers under `torch.export`: the time loop as one `scan`, so time stays dynamic.

`torch.export` traces `nn.RNN`, `nn.LSTM` and `nn.GRU` through torch's decompositions,
which unroll the time loop step by step (export turns oneDNN's fused LSTM off), so the
exported program would only run the sequence length it was traced with; a packed batch
is worse: its step sizes are data, which export cannot trace at all. While exporting,
a `RecurrentBlock` computes its torch module through `run` instead: the input
projection of every step in one product, then the recurrence as torch's `scan`
higher-order operator over the time axis, both directions of a bidirectional layer
in the same scan (the backward one on each sequence reversed within its length, as
`stepwise.run` does, so nothing is packed). The cells are torch's own equations
(gate orders LSTM i,f,g,o and GRU r,z,n, GRU's reset gate after the recurrent
product), so the function is the module's, to float rounding; dropout is off (the
export is of an eval-mode module).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def run(rnn: nn.RNNBase, x: Tensor, lengths: Tensor | None, return_sequences: bool) -> Tensor:
    """`rnn` on batch-first `x`, as `stepwise.run` defines it: the last layer's outputs
    `[batch, time, directions * units]` (zero past each length when bidirectional), or
    its final states `[batch, directions * units]` (forward direction at each sequence's
    last real step, backward direction at step 0)."""
    directions, units = (2 if rnn.bidirectional else 1), rnn.hidden_size
    steps = x.shape[1]
    u = x.transpose(0, 1)  # time-major [T, B, F]
    padding = reverse_index = None
    if lengths is not None:
        t = torch.arange(steps, device=x.device)[:, None]
        padding = (t >= lengths[None, :]).unsqueeze(-1)
        u = u.masked_fill(padding, 0.0)
        if directions == 2:
            reverse_index = torch.where(t < lengths[None, :], lengths[None, :] - 1 - t, t).unsqueeze(-1)
    for layer in range(rnn.num_layers):
        if directions == 1:
            stacked = u.unsqueeze(1)
        else:
            stacked = torch.stack([u, _reverse(u, reverse_index)], dim=1)
        seq = _layer(rnn, layer, stacked)  # [T, D, B, H]
        if directions == 1:
            u = seq[:, 0]
        else:
            u = torch.cat([seq[:, 0], _reverse(seq[:, 1], reverse_index)], dim=-1)
            if padding is not None:
                u = u.masked_fill(padding, 0.0)  # as packing does: nothing past a sequence's end
    if return_sequences:
        return u.transpose(0, 1)
    batch = torch.arange(x.shape[0], device=x.device)
    last = (lengths - 1).clamp(min=0) if lengths is not None else torch.full_like(batch, steps - 1)
    forward = u[last, batch, :units]
    return forward if directions == 1 else torch.cat([forward, u[0, :, units:]], dim=-1)


def _reverse(u: Tensor, index: Tensor | None) -> Tensor:
    """Each sequence's real steps in reverse order, the padding left where it is (the
    whole time axis reversed without lengths)."""
    return u.flip(0) if index is None else u.gather(0, index.expand_as(u))


def _param(rnn: nn.RNNBase, name: str, layer: int, directions: int) -> Tensor:
    """`name` of `layer` for every direction, `[directions, ...]`."""
    return torch.stack([getattr(rnn, f"{name}_l{layer}{suffix}") for suffix in ("", "_reverse")[:directions]])


def _layer(rnn: nn.RNNBase, layer: int, x: Tensor) -> Tensor:
    """One layer on `x` `[T, D, B, F]` (each direction's input in its own time order):
    its outputs `[T, D, B, H]`."""
    mode, directions, units = rnn.mode, x.shape[1], rnn.hidden_size
    w_ih, w_hh = _param(rnn, "weight_ih", layer, directions), _param(rnn, "weight_hh", layer, directions)
    w_hh_t = w_hh.transpose(1, 2)
    b_ih = _param(rnn, "bias_ih", layer, directions) if rnn.bias else None
    b_hh = _param(rnn, "bias_hh", layer, directions) if rnn.bias else None
    in_bias = b_ih if mode == "GRU" or b_ih is None or b_hh is None else b_ih + b_hh  # added once, outside the loop
    # every step's input product at once, one direction at a time
    projected = torch.stack(
        [F.linear(x[:, d], w_ih[d], None if in_bias is None else in_bias[d]) for d in range(directions)], dim=1
    )
    h0 = x.new_zeros(directions, x.shape[2], units)
    if mode == "LSTM":
        return _scan(_lstm_step, [h0, h0.clone()], projected, (w_hh_t,))
    if mode == "GRU":  # its recurrent bias stays inside the reset gate's product
        b_hh = w_hh.new_zeros(directions, w_hh.shape[1]) if b_hh is None else b_hh
        return _scan(_gru_step, [h0], projected, (w_hh_t, b_hh[:, None, :]))
    return _scan(_relu_step if mode == "RNN_RELU" else _tanh_step, [h0], projected, (w_hh_t,))


def _scan(step: Callable[..., tuple[Tensor, ...]], carry: list[Tensor], xs: Tensor, weights: tuple[Tensor, ...]) -> Tensor:
    """`step(*carry, x_t, *weights) -> (*carry, y_t)` over the first axis of `xs`: the
    `y_t` stacked. The operator itself, not `torch._higher_order_ops.scan.scan`: that
    wrapper compiles its loop with dynamo, whose cache outlives one export and leaks
    guards on the last export's shapes into the next (pinning a dynamic time axis).
    Imported here: a private operator that older torch lacks, needed by export alone."""
    from torch._higher_order_ops.scan import scan_op

    return scan_op(step, carry, [xs], weights)[-1]  # type: ignore[no-any-return]


# The cells, torch's equations (`gx`: the step's input product, with both biases but
# GRU's recurrent one); a step's output is a copy, since scan's outputs may not alias
# its carry.


def _tanh_step(h: Tensor, gx: Tensor, w_hh_t: Tensor) -> tuple[Tensor, Tensor]:
    h = torch.tanh(torch.baddbmm(gx, h, w_hh_t))
    return h, h.clone()


def _relu_step(h: Tensor, gx: Tensor, w_hh_t: Tensor) -> tuple[Tensor, Tensor]:
    h = torch.relu(torch.baddbmm(gx, h, w_hh_t))
    return h, h.clone()


def _lstm_step(h: Tensor, c: Tensor, gx: Tensor, w_hh_t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    i, f, g, o = torch.baddbmm(gx, h, w_hh_t).chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return h, c, h.clone()


def _gru_step(h: Tensor, gx: Tensor, w_hh_t: Tensor, b_hh: Tensor) -> tuple[Tensor, Tensor]:
    xr, xz, xn = gx.chunk(3, dim=-1)
    hr, hz, hn = torch.baddbmm(b_hh, h, w_hh_t).chunk(3, dim=-1)
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    h = (1 - z) * n + z * h
    return h, h.clone()
