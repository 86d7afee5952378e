"""Pooling over time: pool reduces a sequence to one vector."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, TypeAlias

from .base import BATCH, LayerKind, Shape, sequence_features, setting


@dataclass(frozen=True)
class Pool(LayerKind):
    """Reduces the time axis: the last real step, or the mean or max over real steps."""

    mode: Literal["last", "mean", "max"] = setting()
    kind: ClassVar[str] = "pool"
    takes_sequences: ClassVar[bool] = True

    def output_shape(self, shape: Shape) -> Shape:
        return (BATCH, sequence_features(shape))

    def streaming_problem(self) -> str:
        return "" if self.mode == "last" else f"pool '{self.mode}' reduces the whole sequence, so it cannot stream"

    def describe(self) -> str:
        return f"pool({self.mode})"


Kind: TypeAlias = Pool
KINDS = (Pool,)
