"""Recurrent layers (simple_rnn, lstm, gru) as `nn.RNN`/`nn.LSTM`/`nn.GRU` blocks.

One block runs one spec layer, or several consecutive compatible ones fused into a
single multi-layer torch module (`fusable` says when). Padding never changes a result:
a variable-length batch through a bidirectional layer is packed (`pack_padded_sequence`,
unsorted); a forward-only layer runs unpacked, since its real steps cannot see the
padding after them (see `RecurrentBlock.packs`). `return_sequences: false` yields the
forward direction's output at each sequence's last real step and, when bidirectional,
the backward direction's output at step 0 (`h_n`), as Keras and ONNX do. A sequence of
length 0 yields zeros (its initial state). A bidirectional `merge_mode` other than
concat joins the directions of the output (`keras_cells.merge_directions`); a layer
whose cell torch lacks (`Recurrent.keras_cell`) is `keras_cells.KerasCellBlock`. A layer's `dropout` drops its inputs while
training (Keras's meaning; PyTorch's own `dropout` argument is exactly this between
fused layers). While training on a CPU the block usually computes its torch module with
`cpu.run` instead, the same function without packing, faster (see cpu/stepwise.py);
under `torch.export` it computes it with `export_loop.run`, a `scan` over time, so the
exported program takes any sequence length.

In a graph (spec version 2) a layer may start from another layer's final state and
hand its own on (`initial_state: NAME.state`): `forward_state` takes an initial state
and returns the final one, in torch's layout (`h` `[directions, batch, units]`, with
`c` for LSTM), at each sequence's last real step; it always runs torch's own module,
packed when there are lengths (`h_n` is then exactly that step's). A chain trained
with `training.tbptt` runs its chunks through it too, each from the last one's state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import assert_never

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnc import ir

from . import cpu, export_loop
from .block import Block, exporting, zero_padding
from .keras_cells import merge_directions

RecurrentLayer = ir.SimpleRNN | ir.LSTM | ir.GRU
State = Tensor | tuple[Tensor, Tensor]  # h, or (h, c) for LSTM: [directions, batch, units] each


def fusable(group: Sequence[ir.Node], node: ir.Node) -> bool:
    """Whether `node` can join the multi-layer module running the nodes of `group`.

    The layers must agree on everything a torch multi-layer module shares, every layer
    but the last must return sequences, and the input dropout of the second and later
    layers must be one rate (torch has one inter-layer `dropout`).
    """
    first, prev, layer = group[0].layer, group[-1].layer, node.layer
    if not isinstance(layer, ir.Recurrent) or type(first) is not type(layer):
        return False
    assert isinstance(first, ir.Recurrent) and isinstance(prev, ir.Recurrent)
    if first.keras_cell or layer.keras_cell or prev.merge_mode != "concat":
        return False  # a cell torch lacks runs alone (keras_cells); torch feeds a fused layer both directions
    same_shape = (
        layer.units == first.units
        and layer.bidirectional == first.bidirectional
        and layer.use_bias == first.use_bias
        and getattr(layer, "activation", None) == getattr(first, "activation", None)
        and node.masked == group[0].masked
    )
    same_dropout = len(group) == 1 or group[1].layer.dropout == layer.dropout  # type: ignore[union-attr]
    return same_shape and prev.return_sequences and same_dropout


class RecurrentBlock(Block):
    def __init__(self, nodes: Sequence[ir.Node], kernels: str = "auto"):
        super().__init__()
        first = nodes[0].layer
        last = nodes[-1].layer
        assert isinstance(first, RecurrentLayer) and isinstance(last, RecurrentLayer)
        features = nodes[0].input_shape[-1]
        assert isinstance(features, int)
        self.indices = [node.index for node in nodes]
        self.units = first.units
        self.directions = first.directions
        self.use_bias = first.use_bias
        self.return_sequences = last.return_sequences
        self.merge_mode = last.merge_mode
        self.is_lstm = isinstance(first, ir.LSTM)
        # A forward-only layer is causal: its real steps never see the padding after
        # them, so it runs unpacked (several times faster than packed, on CPU and GPU)
        # and takes each sequence's last real step by index. A backward direction
        # starts in the padding, so bidirectional layers pack; so does a relu
        # simple_rnn, whose state could overflow over a long padded tail and turn the
        # (zero) gradients flowing through it into NaN.
        self.relu = getattr(first, "activation", "tanh") == "relu"
        self.packs = first.bidirectional or self.relu
        self.input_dropout = cpu.Dropout(first.dropout) if first.dropout > 0 else None
        self.kernels = kernels  # training.kernels: torch never runs rnnc's CPU loop
        self.workspace = cpu.Workspace()  # training buffers kept between steps
        shared = dict(
            input_size=features,
            hidden_size=first.units,
            num_layers=len(nodes),
            bias=first.use_bias,
            batch_first=True,
            bidirectional=first.bidirectional,
            dropout=nodes[1].layer.dropout if len(nodes) > 1 else 0.0,  # type: ignore[union-attr]
        )
        self.rnn: nn.RNNBase
        match first:
            case ir.SimpleRNN():
                self.rnn = nn.RNN(nonlinearity=first.activation, **shared)
            case ir.LSTM():
                self.rnn = nn.LSTM(**shared)
            case ir.GRU():
                self.rnn = nn.GRU(**shared)
            case _:
                assert_never(first)

    def ir_parameters(self) -> dict[str, nn.Parameter]:
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh") if self.use_bias else ("weight_ih", "weight_hh")
        params = {}
        for depth, index in enumerate(self.indices):
            for suffix in ("", "_reverse")[: self.directions]:
                for name in names:
                    params[f"layers.{index}.{name}{suffix}"] = getattr(self.rnn, f"{name}_l{depth}{suffix}")
        return params

    def forward(self, x: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor | None]:
        y, lengths = self._forward(x, lengths)
        return (merge_directions(y, self.merge_mode, self.units) if self.directions == 2 else y), lengths

    def _forward(self, x: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor | None]:
        if self.input_dropout is not None:
            x = self.input_dropout(x)
        if exporting() and not self.training:
            y = export_loop.run(self.rnn, x, lengths, self.return_sequences)
        elif cpu.applies(self.rnn, x, lengths, self.kernels):
            y = cpu.run(self.rnn, x, lengths, self.return_sequences, self.workspace)
        elif cpu.infers_in_numpy(self.rnn, x, lengths, self.kernels):
            return cpu.infer(self.rnn, x, self.return_sequences), None
        elif lengths is None:
            out, state = self.rnn(x)
            return (out if self.return_sequences else self._last_state(state, x.shape[0])), None
        elif self.packs:
            y = self._packed(x, lengths)
        else:
            # Zeroed padding keeps junk (even NaN) in padded input steps out of the
            # values computed there, and so out of the gradients.
            out, _ = self.rnn(zero_padding(x, lengths))
            if self.return_sequences:
                y = out
            else:
                y = out[torch.arange(x.shape[0], device=out.device), (lengths - 1).clamp(min=0)]
        if lengths is None:
            return y, None
        empty = (lengths == 0).view(-1, *([1] * (y.dim() - 1)))
        return y.masked_fill(empty, 0.0), lengths

    def forward_state(self, x: Tensor, lengths: Tensor | None, initial: State | None = None
                      ) -> tuple[Tensor, Tensor | None, State]:
        y, lengths, state = self._forward_state(x, lengths, initial)
        return (merge_directions(y, self.merge_mode, self.units) if self.directions == 2 else y), lengths, state

    def _forward_state(self, x: Tensor, lengths: Tensor | None, initial: State | None = None
                       ) -> tuple[Tensor, Tensor | None, State]:
        """`forward` started from `initial` (None: zeros), with the final state as well.

        A sequence of length 0 has no step to run: its final state (and, without
        `return_sequences`, its output) is its initial state, zeros when none is given.
        Padded input steps are zeroed first, so that junk there (even NaN) reaches
        neither the one step packing runs for an empty sequence nor the gradients.
        A fused block's state holds each of its layers' (torch's `[layers * directions,
        batch, units]`); a graph never fuses, so `NAME.state` is always one layer's.
        """
        if self.input_dropout is not None:
            x = self.input_dropout(x)
        batch = x.shape[0]
        if lengths is None:
            out, state = self.rnn(x, initial)
            return (out if self.return_sequences else self._last_state(state, batch)), None, state
        packed = pack_padded_sequence(zero_padding(x, lengths), lengths.cpu().clamp(min=1), batch_first=True,
                                      enforce_sorted=False)
        out, state = self.rnn(packed, initial)
        empty = lengths == 0
        state = _where_empty(empty, state, initial)
        if not self.return_sequences:
            return self._last_state(state, batch), lengths, state
        y = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]
        return y.masked_fill(empty[:, None, None], 0.0), lengths, state

    def _packed(self, x: Tensor, lengths: Tensor) -> Tensor:
        # Packing wants at least one step per sequence; an empty one runs one (padded)
        # step and its result is zeroed by the caller.
        packed = pack_padded_sequence(x, lengths.cpu().clamp(min=1), batch_first=True, enforce_sorted=False)
        out, state = self.rnn(packed)
        if self.return_sequences:
            return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]
        return self._last_state(state, x.shape[0])

    def _last_state(self, state: Tensor | tuple[Tensor, Tensor], batch: int) -> Tensor:
        """The last layer's `h_n`, directions side by side: `[batch, directions * units]`."""
        h_n = state[0] if isinstance(state, tuple) else state
        if self.directions == 1:
            return h_n[-1]
        return h_n[-2:].transpose(0, 1).reshape(batch, 2 * self.units)


def _where_empty(empty: Tensor, state: State, initial: State | None) -> State:
    """`state` with the rows of empty sequences replaced by their initial state (zeros)."""
    def pick(final: Tensor, start: Tensor | None) -> Tensor:
        start = final.new_zeros(()) if start is None else start
        return torch.where(empty[None, :, None], start, final)

    if isinstance(state, tuple):
        h0, c0 = initial if isinstance(initial, tuple) else (None, None)
        return pick(state[0], h0), pick(state[1], c0)
    assert not isinstance(initial, tuple)
    return pick(state, initial)
