"""Normalisation: layer_norm over the feature axis, with a learned scale and shift, and
normalization (spec version 2) with the training data's mean and variance per feature."""

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


@dataclass(frozen=True)
class Normalization(LayerKind):
    """(x - mean) / max(sqrt(variance), 1e-7) per feature, as Keras's Normalization: mean
    and variance are computed from the training data before training (padded steps do
    not count), stored as weights and exported with the graph."""

    kind: ClassVar[str] = "normalization"
    graph_only: ClassVar[bool] = True

    def output_shape(self, shape: Shape) -> Shape:
        if len(shape) < 2:
            raise ShapeMismatch(f"expects input with a feature axis, got {show(shape)}")
        return shape

    def params(self, prefix: str, shape: Shape) -> list[Param]:
        features = last_axis(shape)
        return [Param(f"{prefix}.mean", (features,), "zeros", trainable=False),
                Param(f"{prefix}.variance", (features,), "ones", trainable=False)]


NORMALIZATION_EPSILON = 1e-7  # the floor of the standard deviation, as Keras's

Kind: TypeAlias = LayerNorm | Normalization
KINDS = (LayerNorm, Normalization)
