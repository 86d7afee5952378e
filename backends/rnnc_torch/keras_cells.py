"""Recurrent layers whose cell torch's modules lack, run as a time loop of Keras 3's equations.

A layer with a hard sigmoid `recurrent_activation`, a GRU with `reset_after: false`, or
`recurrent_dropout` (`Recurrent.keras_cell`) cannot run in `nn.LSTM`/`nn.GRU` nor in
rnnc's CPU loop (cpu/stepwise.py), whose cells are torch's: `KerasCellBlock` computes it
here instead, step by step, with autograd. Its parameters keep the IR's names and
PyTorch's layout (gate orders LSTM i,f,g,o and GRU r,z,n; a `reset_after: false` GRU has
the one bias `bias_ih`). Variable length is a per-step mask: a padded step keeps the
state, and its output is zero, so the forward direction's final state is the one at
each sequence's last real step and the backward direction starts at it, as packing
does. `recurrent_dropout` draws, per sequence and direction, one mask per gate block
(Keras's implementation 1) on the state entering the recurrent products, reused at
every step, while training only; it draws from `cpu.Dropout`'s generator, so sharded
steps stay deterministic. The state carried on (and a GRU's update) is never dropped.
A bidirectional `merge_mode` joins the directions here as in `RecurrentBlock`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnc import ir
from rnnc.initial import rule
from rnnc.layers.recurrent import HARD_SIGMOIDS

from .block import Block, draw, step_mask
from .cpu import Dropout

State = Tensor | tuple[Tensor, Tensor]  # [directions, batch, units]; (h, c) for LSTM


def merge_directions(y: Tensor, mode: str, units: int) -> Tensor:
    """`y` with the two directions side by side on its last axis joined by `mode`."""
    forward, backward = y[..., :units], y[..., units:]
    match mode:
        case "sum":
            return forward + backward
        case "mul":
            return forward * backward
        case "ave":
            return (forward + backward) * 0.5
    return y


def _gate(name: str) -> Callable[[Tensor], Tensor]:
    """The gates' activation: sigmoid, or a hard sigmoid clip(slope * x + offset, 0, 1)."""
    if name == "sigmoid":
        return torch.sigmoid
    slope, offset = HARD_SIGMOIDS[name]
    return lambda v: torch.clamp(v * slope + offset, 0.0, 1.0)


class KerasCellBlock(Block):
    """One recurrent layer as a time loop; see the module docstring."""

    def __init__(self, node: ir.Node):
        super().__init__()
        layer = node.layer
        assert isinstance(layer, ir.SimpleRNN | ir.LSTM | ir.GRU)
        self.layer = layer
        self.prefix = f"layers.{node.index}"
        self.weights = nn.ParameterDict({
            p.name.rsplit(".", 1)[1]: nn.Parameter(torch.empty(p.shape)) for p in layer.params(self.prefix, node.input_shape)
        })
        self.input_dropout = Dropout(layer.dropout) if layer.dropout > 0 else None
        self.recurrent_dropout = Dropout(layer.recurrent_dropout)
        for p in layer.params(self.prefix, node.input_shape):  # drawn as keras's at construction, as torch's modules
            draw(self.weights[p.name.rsplit(".", 1)[1]], rule(node, p, "keras"))  # draw theirs (the spec's: `initialise`)

    def ir_parameters(self) -> dict[str, nn.Parameter]:
        return {f"{self.prefix}.{name}": param for name, param in self.weights.items()}

    def forward(self, x: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor | None]:
        y, lengths, _ = self.forward_state(x, lengths)
        return y, lengths

    def forward_state(self, x: Tensor, lengths: Tensor | None, initial: State | None = None
                      ) -> tuple[Tensor, Tensor | None, State]:
        """The output and the final state (torch's layout), started from `initial`.
        Both directions advance in one loop, stacked on a leading axis, the backward one
        over the time axis flipped (its padding then comes first, and keeps its state at
        zero until its sequence's last real step)."""
        if self.input_dropout is not None:
            x = self.input_dropout(x)
        layer, units = self.layer, self.layer.units
        batch, steps, directions = x.shape[0], x.shape[1], layer.directions
        suffixes = ("", "_reverse")[:directions]
        w = self.weights
        # every step's input product at once; the backward direction's in its own time order
        projected = torch.stack([F.linear(x if d == 0 else x.flip(1), w[f"weight_ih{s}"], w.get(f"bias_ih{s}"))
                                 for d, s in enumerate(suffixes)])  # [D, B, T, G]
        w_hh_t = torch.stack([w[f"weight_hh{s}"] for s in suffixes]).transpose(1, 2)  # [D, U, G]
        b_hh = torch.stack([w[f"bias_hh{s}"] for s in suffixes])[:, None, :] if "bias_hh" in w else None
        h = x.new_zeros(directions, batch, units)
        c = x.new_zeros(directions, batch, units) if isinstance(layer, ir.LSTM) else None
        if isinstance(initial, tuple):
            h, c = initial
        elif initial is not None:
            h = initial
        masks = None  # [D, gate blocks, B, U]
        if self.training and layer.recurrent_dropout > 0:
            masks = self.recurrent_dropout(x.new_ones(directions, layer.gates, batch, units))
        real = None
        if lengths is not None:
            forward = step_mask(lengths, steps)
            real = torch.stack([forward, forward.flip(1)][:directions])[..., None]  # [D, B, T, 1]
        if directions == 1:  # 2-D products on [B, ...]: cheaper per call than batched ones
            projected, w_hh_t, h = projected[0], w_hh_t[0], h[0]
            b_hh, c = (None if b_hh is None else b_hh[0]), (None if c is None else c[0])
            masks, real = (None if masks is None else masks[0]), (None if real is None else real[0])
        outputs = []
        for i in range(steps):
            new_h, new_c = self._step(projected[..., i, :], h, c, w_hh_t, b_hh, masks)
            if real is None:
                h, c = new_h, new_c
                outputs.append(h)
                continue
            keep = real[..., i, :]
            h = torch.where(keep, new_h, h)
            c = torch.where(keep, new_c, c) if c is not None and new_c is not None else c
            outputs.append(new_h.masked_fill(~keep, 0.0))
        if directions == 1:
            h, c = h[None], (None if c is None else c[None])
        if layer.return_sequences:
            seq = torch.stack(outputs, dim=-2) if steps else x.new_zeros(batch, 0, units)  # [D, B, T, U] or [B, T, U]
            y = seq if directions == 1 else torch.cat([seq[0], seq[1].flip(1)], dim=-1)
        else:  # forward: the last real step's; backward: step 0's (its final state)
            y = torch.cat(list(h), dim=-1)
        y = merge_directions(y, layer.merge_mode, units) if layer.bidirectional else y
        state: State = h if c is None else (h, c)
        return y, lengths, state

    def _step(self, gx: Tensor, h: Tensor, c: Tensor | None, w_hh_t: Tensor, b_hh: Tensor | None,
              masks: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """One step of the cell for every direction at once (`[D, B, ...]`, or `[B, ...]`
        for one direction): Keras 3's equations in torch's gate order."""
        layer, units = self.layer, self.layer.units
        gate = _gate(getattr(layer, "recurrent_activation", "sigmoid"))

        def recurrent(rows: slice, block: int, state: Tensor) -> Tensor:
            """`state` (dropped by gate `block`'s mask) times the recurrent rows `rows`."""
            dropped = state if masks is None else state * masks[..., block, :, :]
            if b_hh is None:
                return dropped @ w_hh_t[..., rows]
            return (torch.addmm if state.dim() == 2 else torch.baddbmm)(b_hh[..., rows], dropped, w_hh_t[..., rows])

        match layer:
            case ir.SimpleRNN():
                pre = gx + recurrent(slice(None), 0, h)
                return (torch.relu(pre) if layer.activation == "relu" else torch.tanh(pre)), None
            case ir.LSTM():
                assert c is not None
                if masks is None:
                    i, f, g, o = (gx + recurrent(slice(None), 0, h)).chunk(4, dim=-1)
                else:
                    i, f, g, o = (gx[..., k * units:(k + 1) * units] + recurrent(slice(k * units, (k + 1) * units), k, h)
                                  for k in range(4))
                c = gate(f) * c + gate(i) * torch.tanh(g)
                return gate(o) * torch.tanh(c), c
            case ir.GRU():
                xr, xz, xn = gx.chunk(3, dim=-1)
                if masks is None and layer.reset_after:
                    hr, hz, hn = recurrent(slice(None), 0, h).chunk(3, dim=-1)
                else:
                    hr, hz = recurrent(slice(0, units), 0, h), recurrent(slice(units, 2 * units), 1, h)
                    hn = recurrent(slice(2 * units, None), 2, h) if layer.reset_after else h.new_zeros(())
                r, z = gate(xr + hr), gate(xz + hz)
                if layer.reset_after:
                    n = torch.tanh(xn + r * hn)
                else:  # the reset gate scales the (dropped) state before its product
                    dropped = h if masks is None else h * masks[..., 2, :, :]
                    n = torch.tanh(xn + (r * dropped) @ w_hh_t[..., 2 * units :])
                return (1 - z) * n + z * h, None
        raise AssertionError(layer)
