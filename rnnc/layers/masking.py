"""Masking: the layers that skip steps anywhere in a sequence, as Keras's masks do.

`masking` skips the steps whose features all equal `mask_value` (Keras's `Masking`);
an embedding with `mask_zero: anywhere` skips every step whose id is 0 (Keras's
`mask_zero=True`), where `mask_zero: true` takes only the zeros after the last real id
as padding. A skipped step leaves every later layer as if it were not there: a
recurrent layer keeps its state over it, a pool ignores it. Both backends compute this
by moving each sequence's kept steps to its front, in order, and giving the rest of the
model their count as the sequence's length (`skips_steps` says which layers do), which
is exactly the same function for every layer that acts on steps one at a time or in
order; a convolution, which mixes neighbouring steps, may not follow, and the model's
output is one vector per sequence (the rules in rnnc.validate).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, TypeAlias

from .base import LayerKind, Shape, sequence_features, setting
from .embedding import Embedding


@dataclass(frozen=True)
class Masking(LayerKind):
    """Skips the steps whose features all equal `mask_value`; shape unchanged."""

    mask_value: float = setting(0.0, description="A step whose every feature equals this is skipped.")
    kind: ClassVar[str] = "masking"
    takes_sequences: ClassVar[bool] = True

    def output_shape(self, shape: Shape) -> Shape:
        sequence_features(shape)
        return shape

    def describe(self) -> str:
        return f"masking({self.mask_value:g})"


def skips_steps(layer: LayerKind) -> bool:
    """Whether `layer` skips masked steps anywhere in a sequence (not only trailing padding)."""
    return isinstance(layer, Masking) or (isinstance(layer, Embedding) and layer.mask_zero == "anywhere")


Kind: TypeAlias = Masking
KINDS = (Masking,)
