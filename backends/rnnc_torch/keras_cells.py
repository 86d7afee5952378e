"""Recurrent layers whose cell torch's modules lack, run as a time loop of Keras 3's equations.

A layer with `recurrent_activation: hard_sigmoid`, a GRU with `reset_after: false`, or
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

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnc import ir

from .block import Block, step_mask
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
        self.init_keras()

    def ir_parameters(self) -> dict[str, nn.Parameter]:
        return {f"{self.prefix}.{name}": param for name, param in self.weights.items()}

    def init_keras(self) -> None:
        """As `RecurrentBlock.init_keras`: glorot_uniform, orthogonal, zeros, LSTM's forget bias 1."""
        units = self.layer.units
        for name, param in self.weights.items():
            if name.startswith("weight_ih"):
                nn.init.xavier_uniform_(param)
            elif name.startswith("weight_hh"):
                nn.init.orthogonal_(param)
            else:
                nn.init.zeros_(param)
                if isinstance(self.layer, ir.LSTM) and name.startswith("bias_ih"):
                    with torch.no_grad():
                        param[units : 2 * units] = 1.0

    def forward(self, x: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor | None]:
        y, lengths, _ = self.forward_state(x, lengths)
        return y, lengths

    def forward_state(self, x: Tensor, lengths: Tensor | None, initial: State | None = None
                      ) -> tuple[Tensor, Tensor | None, State]:
        """The output and the final state (torch's layout), started from `initial`."""
        if self.input_dropout is not None:
            x = self.input_dropout(x)
        layer, batch, steps = self.layer, x.shape[0], x.shape[1]
        real = step_mask(lengths, steps) if lengths is not None else None
        lstm = isinstance(layer, ir.LSTM)
        outputs, finals_h, finals_c = [], [], []
        for d, suffix in enumerate(("", "_reverse")[: layer.directions]):
            h0 = c0 = None
            if initial is not None:
                h0 = (initial[0] if isinstance(initial, tuple) else initial)[d]
                c0 = initial[1][d] if isinstance(initial, tuple) else None
            seq, h, c = self._direction(x, real, suffix, h0, c0, reverse=d == 1)
            outputs.append(seq)
            finals_h.append(h)
            finals_c.append(c)
        if layer.return_sequences:
            y = torch.cat(outputs, dim=-1)
        else:  # forward: the last real step's; backward: step 0's (its final state)
            y = torch.cat(finals_h, dim=-1)
        y = merge_directions(y, layer.merge_mode, layer.units) if layer.bidirectional else y
        state: State = torch.stack(finals_h)
        if lstm:
            state = (state, torch.stack(finals_c))  # type: ignore[arg-type]
        return y, lengths, state

    def _direction(self, x: Tensor, real: Tensor | None, suffix: str, h0: Tensor | None, c0: Tensor | None,
                   reverse: bool) -> tuple[Tensor, Tensor, Tensor | None]:
        """One direction over `x` `[batch, time, features]`: outputs `[batch, time, units]`
        (zero at padded steps) and the final `h` (and `c`)."""
        layer, units, batch, steps = self.layer, self.layer.units, x.shape[0], x.shape[1]
        w = self.weights
        bias_ih = w.get(f"bias_ih{suffix}")
        bias_hh = w.get(f"bias_hh{suffix}")
        w_hh = w[f"weight_hh{suffix}"]
        projected = F.linear(x, w[f"weight_ih{suffix}"], bias_ih)  # every step's input product at once
        h = x.new_zeros(batch, units) if h0 is None else h0
        c = (x.new_zeros(batch, units) if c0 is None else c0) if isinstance(layer, ir.LSTM) else None
        masks = None
        if self.training and layer.recurrent_dropout > 0:
            gates = 1 if isinstance(layer, ir.SimpleRNN) else layer.gates
            masks = self.recurrent_dropout(x.new_ones(gates, batch, units))
        outputs: list[Tensor] = [x.new_zeros(())] * steps
        for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
            new_h, new_c = self._step(projected[:, t], h, c, w_hh, bias_hh, masks)
            if real is None:
                h, c = new_h, new_c
                outputs[t] = h
            else:
                keep = real[:, t : t + 1]
                h = torch.where(keep, new_h, h)
                c = torch.where(keep, new_c, c) if c is not None and new_c is not None else c
                outputs[t] = new_h.masked_fill(~keep, 0.0)
        seq = torch.stack(outputs, dim=1) if steps else x.new_zeros(batch, 0, units)
        return seq, h, c

    def _step(self, gx: Tensor, h: Tensor, c: Tensor | None, w_hh: Tensor, bias_hh: Tensor | None,
              masks: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """One step of the cell: Keras 3's equations in torch's gate order."""
        layer, units = self.layer, self.layer.units
        gate = F.hardsigmoid if getattr(layer, "recurrent_activation", "sigmoid") == "hard_sigmoid" else torch.sigmoid

        def recurrent(rows: slice, block: int, state: Tensor) -> Tensor:
            """`state` (dropped by gate `block`'s mask) times the recurrent rows `rows`."""
            dropped = state if masks is None else state * masks[block]
            return F.linear(dropped, w_hh[rows], None if bias_hh is None else bias_hh[rows])

        match layer:
            case ir.SimpleRNN():
                pre = gx + recurrent(slice(None), 0, h)
                return (torch.relu(pre) if layer.activation == "relu" else torch.tanh(pre)), None
            case ir.LSTM():
                assert c is not None
                if masks is None:
                    i, f, g, o = (gx + recurrent(slice(None), 0, h)).chunk(4, dim=-1)
                else:
                    i, f, g, o = (gx[:, k * units:(k + 1) * units] + recurrent(slice(k * units, (k + 1) * units), k, h)
                                  for k in range(4))
                c = gate(f) * c + gate(i) * torch.tanh(g)
                return gate(o) * torch.tanh(c), c
            case ir.GRU():
                xr, xz, xn = gx.chunk(3, dim=-1)
                r = gate(xr + recurrent(slice(0, units), 0, h))
                z = gate(xz + recurrent(slice(units, 2 * units), 1, h))
                if layer.reset_after:
                    n = torch.tanh(xn + r * recurrent(slice(2 * units, None), 2, h))
                else:  # the reset gate scales the (dropped) state before its product
                    dropped = h if masks is None else h * masks[2]
                    n = torch.tanh(xn + F.linear(r * dropped, w_hh[2 * units :]))
                return (1 - z) * n + z * h, None
        raise AssertionError(layer)
