"""The layer kinds that act on each value or step alone: dense, dropout, activation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, TypeAlias

from .base import ActivationName, InitializerName, LayerKind, Param, Shape, ShapeMismatch, initializer_setting, last_axis, setting, show


@dataclass(frozen=True)
class Dense(LayerKind):
    """Acts on the last axis: per timestep on [timesteps, features]."""

    units: int = setting(shared="units")
    activation: ActivationName = setting("linear", shared="activation")
    use_bias: bool = setting(True)
    initializer: InitializerName | None = initializer_setting()
    kind: ClassVar[str] = "dense"

    def output_shape(self, shape: Shape) -> Shape:
        if len(shape) not in (2, 3):
            raise ShapeMismatch(f"expects input [features] or [timesteps, features], got {show(shape)}")
        return (*shape[:-1], self.units)

    def params(self, prefix: str, shape: Shape) -> list[Param]:
        weight = Param(f"{prefix}.weight", (self.units, last_axis(shape)), "glorot_uniform")
        return [weight, Param(f"{prefix}.bias", (self.units,))] if self.use_bias else [weight]

    def describe(self) -> str:
        return f"dense({self.units}{', ' + self.activation if self.activation != 'linear' else ''})"


@dataclass(frozen=True)
class Dropout(LayerKind):
    """Zeroes a fraction `rate` of its inputs while training; nothing of it remains at inference."""

    rate: float = setting(shared="rate")
    kind: ClassVar[str] = "dropout"

    def describe(self) -> str:
        return f"dropout({self.rate})"


@dataclass(frozen=True)
class Activation(LayerKind):
    """Applies an activation function to each value."""

    activation: ActivationName = setting(shared="activation")
    kind: ClassVar[str] = "activation"
    schema_name: ClassVar[str | None] = "activationLayer"  # `activation` names the list of functions

    def describe(self) -> str:
        return f"activation({self.activation})"


Kind: TypeAlias = Dense | Dropout | Activation
KINDS = (Dense, Dropout, Activation)
