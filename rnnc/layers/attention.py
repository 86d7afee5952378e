"""Attention over a sequence (spec version 2): a weighted mean of the value's steps.

The value is a sequence `[timesteps, d_v]` (the layer's `input`, or `value:`); its
padded steps get zero weight, and a sequence with no real step gives zeros. The query
is a sequence `[timesteps, d_q]` or a vector `[d_q]` (`query:`), and the output has the
query's shape with the value's last axis; without a query the layer pools the value
with a learned query vector (`query` [d_v]) to one vector `[d_v]` per sequence.

Scores (weights in PyTorch's layout, `[out, in]`):
  dot       q . v_t (as Keras's `Attention()`; `scale: true` divides by sqrt(d));
  general   q . W v_t, `weight` [d_q, d_v];
  additive  v . tanh(W_q q + W_v v_t), `weight_query` [units, d_q],
            `weight_value` [units, d_v], `v` [units].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, TypeAlias

from .base import BATCH, InitializerName, LayerKind, Param, Shape, ShapeMismatch, initializer_setting, last_axis, setting, show


@dataclass(frozen=True)
class Attention(LayerKind):
    """A weighted mean of the value's steps, weighted by their scores against the query
    (a learned query without `query`); padded steps of the value get zero weight."""

    score: Literal["dot", "general", "additive"] = setting("dot")
    scale: bool = setting(False, description="dot only: divide the scores by sqrt(d).")
    units: int = setting(0, minimum=0, description="additive only: the size of the hidden layer of the score.")
    query: str = setting("", reference=True, description="A sequence or vector to attend from; absent: a learned query (pooling).")
    value: str = setting("", description="The sequence attended over; the same as input:.")
    initializer: InitializerName | None = initializer_setting()
    kind: ClassVar[str] = "attention"
    graph_only: ClassVar[bool] = True
    takes_sequences: ClassVar[bool] = True

    def _dims(self, shapes: tuple[Shape, ...]) -> tuple[int, int]:
        value = shapes[0]
        if len(value) != 3:
            raise ShapeMismatch(f"the value must be a sequence [timesteps, features], got {show(value)}")
        d_v = last_axis(value)
        if not self.query:
            return d_v, d_v
        query = shapes[1]
        if len(query) not in (2, 3):
            raise ShapeMismatch(f"query: '{self.query}' must be a sequence or a vector, got {show(query)}")
        d_q = last_axis(query)
        if self.score == "dot" and d_q != d_v:
            raise ShapeMismatch(
                f"score dot needs query and value of one size, got query {show(query)} and value {show(value)}; "
                "use score: general or additive for different sizes")
        return d_q, d_v

    def output_shapes(self, shapes: tuple[Shape, ...]) -> Shape:
        _, d_v = self._dims(shapes)
        if self.score == "additive" and self.units < 1:
            raise ShapeMismatch("score additive needs units >= 1")
        if self.score != "additive" and self.units:
            raise ShapeMismatch(f"units is the hidden size of score additive; score {self.score} has none")
        if self.scale and self.score != "dot":
            raise ShapeMismatch(f"scale: true divides dot scores by sqrt(d); score {self.score} learns its own scale")
        if not self.query:
            return (BATCH, d_v)
        return (*shapes[1][:-1], d_v)

    def params_for(self, prefix: str, shapes: tuple[Shape, ...]) -> list[Param]:
        d_q, d_v = self._dims(shapes)
        params = [] if self.query else [Param(f"{prefix}.query", (d_v,), "uniform")]
        if self.score == "general":
            params.append(Param(f"{prefix}.weight", (d_q, d_v), "glorot_uniform"))
        elif self.score == "additive":
            params += [
                Param(f"{prefix}.weight_query", (self.units, d_q), "glorot_uniform"),
                Param(f"{prefix}.weight_value", (self.units, d_v), "glorot_uniform"),
                Param(f"{prefix}.v", (self.units,), "uniform"),
            ]
        return params

    def streaming_problem(self) -> str:
        return "attention reads the whole value sequence at every step, so it cannot stream"

    def describe(self) -> str:
        return f"attention({self.score}{', pooling' if not self.query else ''})"


Kind: TypeAlias = Attention
KINDS = (Attention,)
