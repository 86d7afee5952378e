"""Token ids to vectors: embedding, whose `mask_zero` makes id 0 padding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, TypeAlias

from .base import LayerKind, Param, Shape, ShapeMismatch, setting, show


@dataclass(frozen=True)
class Embedding(LayerKind):
    """Token ids [timesteps] -> vectors [timesteps, dim]. With mask_zero, id 0 is padding."""

    vocab_size: int = setting(shared="units")
    dim: int = setting(shared="units")
    mask_zero: bool = setting(False)
    kind: ClassVar[str] = "embedding"

    def output_shape(self, shape: Shape) -> Shape:
        if len(shape) != 2:
            raise ShapeMismatch(f"expects token ids [timesteps] (input dtype int64), got {show(shape)}")
        return (*shape, self.dim)

    def params(self, prefix: str, shape: Shape) -> list[Param]:
        return [Param(f"{prefix}.weight", (self.vocab_size, self.dim), "uniform")]

    def describe(self) -> str:
        return f"embedding({self.vocab_size}, {self.dim}{', mask_zero' if self.mask_zero else ''})"


Kind: TypeAlias = Embedding
KINDS = (Embedding,)
