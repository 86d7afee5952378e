"""Recurrent layers for training on a CPU: the time loop in Python, the backward pass by hand.

Under autograd, torch's CPU `nn.RNN` and `nn.GRU` record each step's small operations
and walk as many autograd nodes per step backwards, and bidirectional layers run their
directions one after the other (and pack variable-length batches). A trainer knows the
whole computation, so `run` computes a block's (possibly fused, multi-layer) module
with one custom autograd function per layer (`scans.py`): one product for the input
projection of every step, then per step one product for both directions at once and a
few in-place elementwise operations, the backward pass the same loop in reverse, the
weight gradients one product each over all steps, the large buffers reused between
training steps (`Workspace`). A bidirectional layer's backward direction runs on the
input reversed within each sequence's length, so nothing is packed. With lengths, the
rows are put longest first (and back afterwards), so each step runs only the rows
whose sequences have not ended, a prefix (on ragged text about half the steps'
work); the steps past an end are zero, as packing gives. `policy.applies`
says when this path is taken: float32 CPU tensors, gradients on, no autocast, not under
`torch.compile`, and where it measured faster than torch's kernels (`policy.loop_pays`;
torch's LSTM is oneDNN's fused kernel, which wins on small layers). The function is the
same: tests compare values and every gradient with torch's modules.
"""

from __future__ import annotations

import threading

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .scans import GRUScan, LSTMScan, RNNScan

GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}
TANH_BLOCK = {"LSTM": 2, "GRU": 2}  # the gate block computed as 2 * sigmoid(2x) - 1


class Workspace:
    """Large buffers kept from one step to the next, one per slot and thread: a buffer is
    taken for a forward pass and given back once its backward pass is done, so two
    passes in flight never share one (the second allocates its own), and the threads of
    a sharded step (shards.py) each keep their own."""

    def __init__(self) -> None:
        self.free: dict[tuple[int, str], Tensor] = {}

    def take(self, slot: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
        buffer = self.free.pop((threading.get_ident(), slot), None)
        if buffer is None or buffer.shape != shape or buffer.dtype != like.dtype or buffer.device != like.device:
            return like.new_empty(shape)
        return buffer

    def give(self, slot: str, buffer: Tensor) -> None:
        self.free[threading.get_ident(), slot] = buffer


def run(rnn: nn.RNNBase, x: Tensor, lengths: Tensor | None, return_sequences: bool, workspace: Workspace) -> Tensor:
    """What the block's torch module computes on batch-first `x`: the last layer's
    outputs `[batch, time, directions * units]` (zero past each length when
    bidirectional), or its final states `[batch, directions * units]` (forward direction
    at each sequence's last real step, backward direction at step 0)."""
    directions, units = (2 if rnn.bidirectional else 1), rnn.hidden_size
    batch, steps = x.shape[0], x.shape[1]
    padding = reverse_index = active = unsort = None
    if lengths is not None:
        x, lengths, unsort = _by_length(x, lengths)
        t = torch.arange(steps, device=x.device)[:, None]
        real = t < lengths[None, :]
        active = real.sum(1).tolist()  # rows still running at each step: a prefix, the rows sorted
        if active[-1] == batch:
            active = None  # every row runs every step
        padding = ~real.unsqueeze(-1)
        if directions == 2:
            reverse_index = (torch.where(real, lengths[None, :] - 1 - t, t) * batch + torch.arange(batch, device=x.device)).view(-1)
    u = x.transpose(0, 1)  # time-major [T, B, F]
    if padding is not None:
        u = u.masked_fill(padding, 0.0)  # padded steps carry zeros, whatever (even NaN) was there
    last = x
    for layer in range(rnn.num_layers):
        if layer and rnn.dropout and rnn.training:
            u = F.dropout(u, rnn.dropout, training=True)
        if directions == 1:
            stacked = u.contiguous()
        else:
            stacked = torch.stack([u, u.flip(0) if reverse_index is None else _reverse(u, reverse_index)])
        seq, last = _layer(rnn, layer, stacked, workspace, active)
        if directions == 1:
            u = seq
        else:  # zero past each sequence's end, as packing gives: those steps are never computed
            back = seq[1].flip(0) if reverse_index is None else _reverse(seq[1], reverse_index)
            u = torch.cat([seq[0], back], dim=-1)
    if return_sequences:
        y = u.transpose(0, 1)
    elif lengths is None:
        return last if directions == 1 else last.transpose(0, 1).reshape(batch, 2 * units)
    else:
        forward = u[(lengths - 1).clamp(min=0), torch.arange(batch, device=x.device), :units]
        y = forward if directions == 1 else torch.cat([forward, u[0, :, units:]], dim=-1)
    return y if unsort is None else y.index_select(0, unsort)


def _by_length(x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
    """`x` and `lengths` with the rows longest first (stable), and the order that puts
    them back (None where they already are)."""
    order = torch.argsort(lengths, descending=True, stable=True)
    if bool((lengths[1:] <= lengths[:-1]).all()):
        return x, lengths, None
    return x.index_select(0, order), lengths.index_select(0, order), torch.argsort(order)


def _reverse(u: Tensor, index: Tensor) -> Tensor:
    """Each sequence's real steps in reverse order, the padding left where it is:
    `index` gives each (step, row) its source row of `u` flattened to `[T * B, X]`."""
    return u.reshape(-1, u.shape[-1]).index_select(0, index).view_as(u)


def _stacked(rnn: nn.RNNBase, name: str, layer: int, directions: int, scale: Tensor | None) -> Tensor:
    """The parameter `name` of `layer` for every direction, `[directions, ...]`, its
    rows scaled by `scale` (autograd carries the gradients back to the parameters)."""
    params = [getattr(rnn, f"{name}_l{layer}{suffix}") for suffix in ("", "_reverse")[:directions]]
    value = params[0].unsqueeze(0) if directions == 1 else torch.stack(params)
    if scale is None:
        return value
    return value * (scale if value.dim() == 2 else scale[:, None])


def _layer(rnn: nn.RNNBase, layer: int, x: Tensor, workspace: Workspace, active: list[int] | None = None
           ) -> tuple[Tensor, Tensor]:
    """One layer on `x` `[D, T, B, F]` (each direction's input in its own time order):
    `(outputs [D, T, B, H], final states [D, B, H])`; one direction's `x` comes as
    `[T, B, F]` and its results without the direction axis. With `active` (the rows
    sorted longest first) step t runs only its first `active[t]` rows; the others'
    outputs are zero."""
    mode, units = rnn.mode, rnn.hidden_size
    if mode not in TANH_BLOCK:  # a simple RNN takes its parameters as they are: no autograd node per parameter
        names = ("weight_ih", "bias_ih", "bias_hh", "weight_hh")
        if x.dim() == 3:
            w_ih, b_ih, b_hh, w_hh = (getattr(rnn, f"{name}_l{layer}") if rnn.bias or name[0] == "w" else None for name in names)
        else:
            w_ih, b_ih, b_hh, w_hh = (_stacked(rnn, name, layer, 2, None) if rnn.bias or name[0] == "w" else None for name in names)
        return RNNScan.apply(x, w_ih, b_ih, b_hh, w_hh, (workspace, f"{layer}."), mode == "RNN_RELU", active)  # type: ignore[no-any-return]
    if x.dim() == 3:  # one direction
        seq, last = _layer(rnn, layer, x.unsqueeze(0), workspace, active)
        return seq[0], last[0]
    size = GATES[mode] * units
    scale = None
    if mode in TANH_BLOCK:
        scale = torch.ones(size, device=x.device)
        scale[TANH_BLOCK[mode] * units : (TANH_BLOCK[mode] + 1) * units] = 2.0
    directions = x.shape[0]
    w_ih = _stacked(rnn, "weight_ih", layer, directions, scale)
    w_hh = _stacked(rnn, "weight_hh", layer, directions, scale)
    b_ih = _stacked(rnn, "bias_ih", layer, directions, scale) if rnn.bias else None
    b_hh = _stacked(rnn, "bias_hh", layer, directions, scale) if rnn.bias else None
    space = (workspace, f"{layer}.")
    if mode == "GRU":
        return GRUScan.apply(x, w_ih, b_ih, w_hh, b_hh, space, active)  # type: ignore[no-any-return]
    bias = None if b_ih is None or b_hh is None else b_ih + b_hh
    return LSTMScan.apply(x, w_ih, bias, w_hh, space, active)  # type: ignore[no-any-return]
