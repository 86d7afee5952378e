"""The kinds that join values of a graph (spec version 2): concatenate, add, multiply,
average, and repeat_vector, which turns a vector into a sequence to join with one.

Merges take a list of at least two values of one rank: static vectors `[features]`, or
sequences `[timesteps, features]` on one time axis (the graph checks that they share
their lengths too, `rnnc.graph`). A static vector is never broadcast over time: repeat
it first with `repeat_vector`, whose `like: NAME` takes NAME's time axis and lengths.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, TypeAlias

from .base import BATCH, LayerKind, Shape, ShapeMismatch, last_axis, setting, show


def _same_rank(kind: str, shapes: tuple[Shape, ...]) -> None:
    ranks = {len(s) for s in shapes}
    if len(ranks) > 1 or ranks - {2, 3}:
        shown = ", ".join(show(s) for s in shapes)
        hint = " (repeat a vector over time with repeat_vector first)" if ranks == {2, 3} else ""
        raise ShapeMismatch(f"{kind} takes vectors [features] or sequences [timesteps, features] alike, got {shown}{hint}")
    if ranks == {3} and len({s[1] for s in shapes}) > 1:
        shown = ", ".join(show(s) for s in shapes)
        raise ShapeMismatch(f"{kind} takes sequences of one time axis, got {shown}")


@dataclass(frozen=True)
class Concatenate(LayerKind):
    """Joins its inputs along the last axis (features)."""

    kind: ClassVar[str] = "concatenate"
    merges: ClassVar[bool] = True
    graph_only: ClassVar[bool] = True

    def output_shapes(self, shapes: tuple[Shape, ...]) -> Shape:
        _same_rank(self.kind, shapes)
        return (*shapes[0][:-1], sum(last_axis(s) for s in shapes))


@dataclass(frozen=True)
class _Elementwise(LayerKind):
    merges: ClassVar[bool] = True
    graph_only: ClassVar[bool] = True

    def output_shapes(self, shapes: tuple[Shape, ...]) -> Shape:
        _same_rank(self.kind, shapes)
        if len({s[-1] for s in shapes}) > 1:
            raise ShapeMismatch(f"{self.kind} takes inputs of one shape, got {', '.join(show(s) for s in shapes)}")
        return shapes[0]


@dataclass(frozen=True)
class Add(_Elementwise):
    """The sum of its inputs, element by element."""

    kind: ClassVar[str] = "add"


@dataclass(frozen=True)
class Multiply(_Elementwise):
    """The product of its inputs, element by element."""

    kind: ClassVar[str] = "multiply"


@dataclass(frozen=True)
class Average(_Elementwise):
    """The mean of its inputs, element by element."""

    kind: ClassVar[str] = "average"


@dataclass(frozen=True)
class RepeatVector(LayerKind):
    """A vector [features] repeated over time: `n` steps, or as many as the sequence
    `like` names has (and its lengths)."""

    n: int = setting(0, minimum=0, description="Steps to repeat over; give n or like.")
    like: str = setting("", reference=True, description="A sequence whose time axis and lengths the output takes.")
    kind: ClassVar[str] = "repeat_vector"
    graph_only: ClassVar[bool] = True

    def output_shapes(self, shapes: tuple[Shape, ...]) -> Shape:
        vector = shapes[0]
        if len(vector) != 2:
            raise ShapeMismatch(f"expects a vector [features], got {show(vector)}")
        if self.like:
            like = shapes[1]
            if len(like) != 3:
                raise ShapeMismatch(f"like: '{self.like}' must name a sequence [timesteps, features], got {show(like)}")
            return (BATCH, like[1], vector[1])
        return (BATCH, self.n, vector[1])

    def streaming_problem(self) -> str:
        return "" if self.like else "repeat_vector with n repeats in every chunk, so it cannot stream (use like:)"

    def describe(self) -> str:
        return f"repeat_vector({self.like or self.n})"


Kind: TypeAlias = Concatenate | Add | Multiply | Average | RepeatVector
KINDS = (Concatenate, Add, Multiply, Average, RepeatVector)
