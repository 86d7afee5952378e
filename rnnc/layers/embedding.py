"""Token ids to vectors: embedding, whose `mask_zero` makes id 0 padding (trailing, or
with `mask_zero: anywhere` wherever it occurs: see `masking`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, TypeAlias

from .base import InitializerName, LayerKind, Param, Shape, ShapeMismatch, initializer_setting, setting, show


@dataclass(frozen=True)
class Embedding(LayerKind):
    """Token ids [timesteps] -> vectors [timesteps, dim]. With mask_zero, id 0 is padding:
    `true` the zeros after the last non-zero id, `anywhere` every 0 (Keras's mask_zero)."""

    vocab_size: int = setting(shared="units")
    dim: int = setting(shared="units")
    mask_zero: Literal[False, True, "anywhere"] = setting(
        False, description="true: the zeros after the last non-zero id are padding; anywhere: every id 0 is skipped "
                           "(Keras's mask_zero, for sequences padded at the start too).")
    initializer: InitializerName | None = initializer_setting()
    kind: ClassVar[str] = "embedding"

    def output_shape(self, shape: Shape) -> Shape:
        if len(shape) != 2:
            raise ShapeMismatch(f"expects token ids [timesteps] (input dtype int64), got {show(shape)}")
        return (*shape, self.dim)

    def params(self, prefix: str, shape: Shape) -> list[Param]:
        return [Param(f"{prefix}.weight", (self.vocab_size, self.dim), "uniform")]

    def describe(self) -> str:
        mask = {False: "", True: ", mask_zero", "anywhere": ", mask_zero anywhere"}[self.mask_zero]
        return f"embedding({self.vocab_size}, {self.dim}{mask})"


Kind: TypeAlias = Embedding
KINDS = (Embedding,)
