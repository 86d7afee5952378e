"""Normalisation: layer_norm over the feature axis, with a learned scale and shift."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, TypeAlias

from .base import LayerKind, Param, Shape, ShapeMismatch, last_axis, setting, show


@dataclass(frozen=True)
class LayerNorm(LayerKind):
    """Normalises each step over its features, then scales and shifts them."""

    eps: float = setting(1e-5, shared="positiveNumber")
    kind: ClassVar[str] = "layer_norm"

    def output_shape(self, shape: Shape) -> Shape:
        if len(shape) < 2:
            raise ShapeMismatch(f"expects input with a feature axis, got {show(shape)}")
        return shape

    def params(self, prefix: str, shape: Shape) -> list[Param]:
        features = last_axis(shape)
        return [Param(f"{prefix}.weight", (features,), "ones"), Param(f"{prefix}.bias", (features,))]


Kind: TypeAlias = LayerNorm
KINDS = (LayerNorm,)
