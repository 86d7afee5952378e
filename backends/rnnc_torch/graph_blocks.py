"""The kinds spec version 2 adds, lowered to torch: merges, repeat_vector, attention, normalization.

A graph's block is a `Block` whose `forward(x, lengths, *others)` takes its main input
and lengths, then each further value it reads as a `(tensor, lengths)` pair in the
order of `node.sources` (a merge's other inputs; attention's query; repeat_vector's
`like`), and returns `(y, lengths)`. Lengths flow as `rnnc.graph` says: merges keep
their first input's (the graph checked that every input shares them), attention's
output takes the query's, repeat_vector `like:` takes like's. Padding never changes a
real result: merges and normalization work step by step, and attention gives padded
value steps zero weight. The math of each kind is in its definition in `rnnc.layers`.
"""

from __future__ import annotations

import math
from typing import assert_never

import torch
from torch import Tensor, nn

from rnnc import ir
from rnnc.layers.normalization import NORMALIZATION_EPSILON

from .block import Block, step_mask, zero_padding

Value = tuple[Tensor, Tensor | None]  # a tensor and its lengths


def lower_graph_kind(node: ir.Node) -> Block:
    """The block of a node of one of the graph-only kinds (`ir.GRAPH_KINDS`)."""
    layer = node.layer
    match layer:
        case ir.Concatenate() | ir.Add() | ir.Multiply() | ir.Average():
            return MergeBlock(node)
        case ir.RepeatVector():
            return RepeatVectorBlock(node)
        case ir.Attention():
            return AttentionBlock(node)
        case ir.Normalization():
            return NormalizationBlock(node)
        case _:
            raise AssertionError(f"{layer.kind} is not a graph-only kind")


class MergeBlock(Block):
    """concatenate (last axis), add, multiply, average of two or more values alike."""

    def __init__(self, node: ir.Node):
        super().__init__()
        self.kind = node.layer.kind

    def forward(self, x: Tensor, lengths: Tensor | None, *others: Value) -> tuple[Tensor, Tensor | None]:
        values = [x, *(v for v, _ in others)]
        match self.kind:
            case "concatenate":
                y = torch.cat(values, dim=-1)
            case "add":
                y = torch.stack(values).sum(dim=0)
            case "multiply":
                y = values[0]
                for v in values[1:]:
                    y = y * v
            case "average":
                y = torch.stack(values).mean(dim=0)
            case _:
                raise AssertionError(self.kind)
        return y, lengths


class RepeatVectorBlock(Block):
    """`[batch, F]` -> `[batch, steps, F]`: `n` steps, or as many as `like` has (and its lengths)."""

    def __init__(self, node: ir.Node):
        super().__init__()
        assert isinstance(node.layer, ir.RepeatVector)
        self.n = node.layer.n
        self.like = bool(node.layer.like)

    def forward(self, x: Tensor, lengths: Tensor | None, *others: Value) -> tuple[Tensor, Tensor | None]:
        if self.like:
            like, like_lengths = others[0]
            return x[:, None, :].expand(-1, like.shape[1], -1), like_lengths
        return x[:, None, :].expand(-1, self.n, -1), None


class NormalizationBlock(Block):
    """(x - mean) / max(sqrt(variance), 1e-7) per feature; mean and variance are
    parameters that training leaves alone (`requires_grad=False`), set from the data."""

    def __init__(self, node: ir.Node):
        super().__init__()
        features = node.input_shape[-1]
        assert isinstance(features, int)
        self.prefix = f"layers.{node.index}"
        self.mean = nn.Parameter(torch.zeros(features), requires_grad=False)
        self.variance = nn.Parameter(torch.ones(features), requires_grad=False)

    def ir_parameters(self) -> dict[str, nn.Parameter]:
        return {f"{self.prefix}.mean": self.mean, f"{self.prefix}.variance": self.variance}

    def forward(self, x: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor | None]:
        return (x - self.mean) / self.variance.sqrt().clamp(min=NORMALIZATION_EPSILON), lengths


class AttentionBlock(Block):
    """A weighted mean of the value's steps (see `rnnc.layers.attention`).

    The value's padded steps are masked out of the softmax; a value with no real step
    gets weight 0 everywhere, so its output is zeros. Padded steps of the value and the
    query are zeroed before they are read, so junk there (even NaN) reaches neither the
    real results nor the gradients. Set `keep_weights = True` to keep the last call's
    weights in `last_weights` (`[batch, (query steps,) value steps]`, detached).
    """

    def __init__(self, node: ir.Node):
        super().__init__()
        layer = node.layer
        assert isinstance(layer, ir.Attention)
        self.prefix = f"layers.{node.index}"
        self.score = layer.score
        self.scale = layer.scale
        d_v = node.input_shapes[0][-1]
        assert isinstance(d_v, int)
        self.d_v = d_v
        names = {p.name.rsplit(".", 1)[1]: p.shape for p in node.params}
        self.params = nn.ParameterDict({name: nn.Parameter(torch.empty(shape)) for name, shape in names.items()})
        self.keep_weights = False
        self.last_weights: Tensor | None = None

    def ir_parameters(self) -> dict[str, nn.Parameter]:
        return {f"{self.prefix}.{name}": p for name, p in self.params.items()}

    def forward(self, x: Tensor, lengths: Tensor | None, *others: Value) -> tuple[Tensor, Tensor | None]:
        value = x if lengths is None else zero_padding(x, lengths)
        if others:
            query, query_lengths = others[0]
            if query_lengths is not None and query.dim() == 3:
                query = zero_padding(query, query_lengths)
        else:  # pooling: one learned query for every sequence
            query, query_lengths = self.params["query"].expand(x.shape[0], -1), None
        vector = query.dim() == 2
        q = query[:, None, :] if vector else query  # [batch, Tq, d_q]
        scores = self._scores(q, value)  # [batch, Tq, Tv]
        weights = _masked_softmax(scores, lengths)
        if self.keep_weights:
            self.last_weights = (weights[:, 0] if vector else weights).detach()
        y = weights @ value  # [batch, Tq, d_v]
        if vector:
            return y[:, 0], None
        return y, query_lengths

    def _scores(self, q: Tensor, v: Tensor) -> Tensor:
        match self.score:
            case "dot":
                scores = q @ v.transpose(1, 2)
                return scores / math.sqrt(self.d_v) if self.scale else scores
            case "general":
                return (q @ self.params["weight"]) @ v.transpose(1, 2)
            case "additive":
                hq = q @ self.params["weight_query"].T  # [batch, Tq, units]
                hv = v @ self.params["weight_value"].T  # [batch, Tv, units]
                return torch.tanh(hq[:, :, None, :] + hv[:, None, :, :]) @ self.params["v"]
            case _:
                assert_never(self.score)


def _masked_softmax(scores: Tensor, lengths: Tensor | None) -> Tensor:
    """Softmax over the last axis (value steps) with padded steps at weight 0; a row
    with no real step is all zeros (never NaN, nor NaN gradients)."""
    if lengths is None:
        return torch.softmax(scores, dim=-1)
    real = step_mask(lengths, scores.shape[-1])[:, None, :]  # [batch, 1, Tv]
    # An all-padded row would be softmax(-inf...) = NaN: it reads finite zeros instead,
    # and its weights are zeroed after.
    any_real = (lengths > 0)[:, None, None]
    masked = scores.masked_fill(~real, float("-inf")).masked_fill(~any_real, 0.0)
    return torch.softmax(masked, dim=-1).masked_fill(~real, 0.0)
