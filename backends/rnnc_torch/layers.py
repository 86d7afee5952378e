"""Each layer kind lowered to torch: `lower(group)` picks the block of a group of nodes,
and the blocks of the non-recurrent kinds are defined here (the `Block` interface is
in `block`, the recurrent blocks in `recurrent`). Blocks keep padded steps from
changing real results: the per-step layers (dense, layer_norm, activation) cannot mix
steps, conv1d zeroes padded inputs before convolving, pool reduces over real steps only. Each block names its parameters as the IR does
(`ir_parameters`); `block.initialise` draws them.
"""

from __future__ import annotations

from typing import assert_never

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnc import ir

from .activations import Activation
from .block import Block, exporting, lengths_from_ids, step_mask, zero_padding
from .cpu import Dropout
from .graph_blocks import lower_graph_kind
from .keras_cells import KerasCellBlock
from .masking import MaskingBlock, keep_first
from .recurrent import RecurrentBlock


def lower(group: list[ir.Node], kernels: str = "auto") -> Block:
    """The block computing `group`: one node, or consecutive fusable recurrent nodes
    (`model.group_nodes`). The one place that maps each layer kind to its block;
    `kernels` is `training.kernels`, which the recurrent blocks obey."""
    node = group[0]
    layer = node.layer
    match layer:
        case ir.SimpleRNN() | ir.LSTM() | ir.GRU():
            return KerasCellBlock(node) if layer.keras_cell else RecurrentBlock(group, kernels)
        case ir.Embedding():
            return EmbeddingBlock(node)
        case ir.Dense():
            return DenseBlock(node)
        case ir.Dropout():
            return DropoutBlock(node)
        case ir.Activation():
            return ActivationBlock(node)
        case ir.LayerNorm():
            return LayerNormBlock(node)
        case ir.Conv1D():
            return Conv1DBlock(node)
        case ir.Pool():
            return PoolBlock(node)
        case ir.Masking():
            return MaskingBlock(node)
        case ir.Concatenate() | ir.Add() | ir.Multiply() | ir.Average() | ir.RepeatVector() | ir.Attention() | ir.Normalization():
            return lower_graph_kind(node)  # a graph's kinds (spec version 2)
        case _:
            assert_never(layer)


class EmbeddingBlock(Block):
    def __init__(self, node: ir.Node):
        super().__init__()
        assert isinstance(node.layer, ir.Embedding)
        self.prefix = f"layers.{node.index}"
        self.mask_zero = node.layer.mask_zero
        self.embedding = nn.Embedding(node.layer.vocab_size, node.layer.dim)

    def ir_parameters(self) -> dict[str, nn.Parameter]:
        return {f"{self.prefix}.weight": self.embedding.weight}

    def forward(self, x: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor | None]:
        # Explicit lengths win over the ones derived from zero ids: they say the same
        # thing when the data is consistent, and the caller knows best when it is not.
        if x.dim() == 1:  # one id per sample (a graph's int64 [] input): no time axis, no lengths
            return self.embedding(x), None
        if self.mask_zero == "anywhere":  # every id 0 skipped, wherever it is
            x, lengths = keep_first(x, x != 0, lengths)
        if self.mask_zero and lengths is None:
            lengths = lengths_from_ids(x)
        return self.embedding(x), lengths


class DenseBlock(Block):
    """`nn.Linear` acts on the last axis, so a 3-D input is handled per timestep."""

    def __init__(self, node: ir.Node):
        super().__init__()
        layer = node.layer
        assert isinstance(layer, ir.Dense)
        features = node.input_shape[-1]
        assert isinstance(features, int)
        self.prefix = f"layers.{node.index}"
        self.linear = nn.Linear(features, layer.units, bias=layer.use_bias)
        self.activation = Activation(layer.activation)

    def ir_parameters(self) -> dict[str, nn.Parameter]:
        params = {f"{self.prefix}.weight": self.linear.weight}
        if self.linear.bias is not None:
            params[f"{self.prefix}.bias"] = self.linear.bias
        return params

    def forward(self, x: Tensor, lengths: Tensor | None, logits: bool = False) -> tuple[Tensor, Tensor | None]:
        y = self.linear(x)
        return (y if logits else self.activation(y)), lengths


class DropoutBlock(Block):
    def __init__(self, node: ir.Node):
        super().__init__()
        assert isinstance(node.layer, ir.Dropout)
        self.dropout = Dropout(node.layer.rate)

    def forward(self, x: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor | None]:
        return self.dropout(x), lengths


class ActivationBlock(Block):
    def __init__(self, node: ir.Node):
        super().__init__()
        assert isinstance(node.layer, ir.Activation)
        self.activation = Activation(node.layer.activation)

    def forward(self, x: Tensor, lengths: Tensor | None, logits: bool = False) -> tuple[Tensor, Tensor | None]:
        return (x if logits else self.activation(x)), lengths


class LayerNormBlock(Block):
    def __init__(self, node: ir.Node):
        super().__init__()
        assert isinstance(node.layer, ir.LayerNorm)
        features = node.input_shape[-1]
        assert isinstance(features, int)
        self.prefix = f"layers.{node.index}"
        self.norm = nn.LayerNorm(features, eps=node.layer.eps)

    def ir_parameters(self) -> dict[str, nn.Parameter]:
        return {f"{self.prefix}.weight": self.norm.weight, f"{self.prefix}.bias": self.norm.bias}

    def forward(self, x: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor | None]:
        return self.norm(x), lengths


class Conv1DBlock(Block):
    """A convolution over time on `[batch, time, features]` (torch wants channels first).

    With lengths, padded input steps are zeroed first, so they look exactly like the
    zero padding a sequence gets when it runs alone. For `same` padding the left pad
    depends on a sequence's own length when stride > 1 (TensorFlow's split), so rows
    whose left pad differs from the batch's are convolved in separate groups.
    """

    def __init__(self, node: ir.Node):
        super().__init__()
        layer = node.layer
        assert isinstance(layer, ir.Conv1D)
        features = node.input_shape[-1]
        assert isinstance(features, int)
        self.layer = layer
        self.prefix = f"layers.{node.index}"
        self.conv = nn.Conv1d(features, layer.filters, layer.kernel_size, stride=layer.stride)
        self.activation = Activation(layer.activation)

    def ir_parameters(self) -> dict[str, nn.Parameter]:
        assert self.conv.bias is not None
        return {f"{self.prefix}.weight": self.conv.weight, f"{self.prefix}.bias": self.conv.bias}

    def forward(self, x: Tensor, lengths: Tensor | None, logits: bool = False) -> tuple[Tensor, Tensor | None]:
        steps = x.shape[1]
        if lengths is not None:
            x = zero_padding(x, lengths)
        h = x.transpose(1, 2)
        if self.layer.padding == "valid":
            y = self.conv(h)
        elif lengths is None:
            y = self.conv(F.pad(h, self.layer.same_padding(steps)))
        else:
            y = self._same_per_sequence(h, lengths, steps)
        y = y.transpose(1, 2)
        if exporting():
            # torch.export cannot reason about the strides of a transposed tensor whose
            # time size is a function of the input's (it guards on them): copy it
            y = y.contiguous()
        if lengths is not None:
            lengths = self._out_lengths(lengths)
        return (y if logits else self.activation(y)), lengths

    def _out_lengths(self, lengths: Tensor) -> Tensor:
        stride, kernel = self.layer.stride, self.layer.kernel_size
        if self.layer.padding == "same":
            return (lengths + stride - 1) // stride
        return ((lengths - kernel) // stride + 1).clamp(min=0)

    def _same_per_sequence(self, h: Tensor, lengths: Tensor, steps: int) -> Tensor:
        stride, kernel = self.layer.stride, self.layer.kernel_size
        out_steps = self.layer.out_length(steps)
        total = ((self._out_lengths(lengths) - 1) * stride + kernel - lengths).clamp(min=0)
        if exporting():
            return self._same_selected(h, total // 2, out_steps)
        lefts = (total // 2).cpu()
        distinct = sorted(set(lefts.tolist()))
        if len(distinct) == 1:
            return self._conv_padded(h, distinct[0], out_steps)
        y = h.new_zeros(h.shape[0], self.layer.filters, out_steps)
        for left in distinct:
            rows = torch.nonzero(lefts == left).squeeze(1).to(h.device)
            y = y.index_copy(0, rows, self._conv_padded(h.index_select(0, rows), left, out_steps))
        return y

    def _same_selected(self, h: Tensor, lefts: Tensor, out_steps: int) -> Tensor:
        """`_same_per_sequence` without data-dependent shapes, for `torch.export`: the
        batch convolved with every left pad a length can ask for, each row taking its own."""
        stride, kernel = self.layer.stride, self.layer.kernel_size
        candidates = range(max(0, kernel - stride) // 2, (kernel - 1) // 2 + 1)
        y = self._conv_padded(h, candidates[0], out_steps)
        for left in candidates[1:]:
            y = torch.where((lefts == left)[:, None, None], self._conv_padded(h, left, out_steps), y)
        return y

    def _conv_padded(self, h: Tensor, left: int, out_steps: int) -> Tensor:
        if exporting():
            # kernel - 1 - left zeros on the right give exactly ceil(T / stride) outputs
            # for every T: no max and no slice over the time axis for export to guard on
            return self.conv(F.pad(h, (left, self.layer.kernel_size - 1 - left)))
        needed = (out_steps - 1) * self.layer.stride + self.layer.kernel_size
        right = max(0, needed - left - h.shape[2])
        return self.conv(F.pad(h, (left, right)))[:, :, :out_steps]


class PoolBlock(Block):
    """Reduces the time axis; with lengths, only real steps count (a sequence of
    length 0 pools to zeros)."""

    def __init__(self, node: ir.Node):
        super().__init__()
        assert isinstance(node.layer, ir.Pool)
        self.mode = node.layer.mode

    def forward(self, x: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor | None]:
        if lengths is None:
            match self.mode:
                case "last":
                    return x[:, -1], None
                case "mean":
                    return x.mean(dim=1), None
                case "max":
                    return x.amax(dim=1), None
        real = step_mask(lengths, x.shape[1])[:, :, None]
        nonempty = (lengths > 0)[:, None]
        match self.mode:
            case "last":
                last = x[torch.arange(x.shape[0], device=x.device), (lengths - 1).clamp(min=0)]
                return last.masked_fill(~nonempty, 0.0), None
            case "mean":
                total = x.masked_fill(~real, 0.0).sum(dim=1)
                return total / lengths.clamp(min=1)[:, None].to(x.dtype), None
            case "max":
                peak = x.masked_fill(~real, float("-inf")).amax(dim=1)
                return peak.masked_fill(~nonempty, 0.0), None
        raise AssertionError(self.mode)
