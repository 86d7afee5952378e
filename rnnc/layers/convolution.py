"""The convolution over time: conv1d, with Keras's `same` and `valid` padding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, TypeAlias

from .base import BATCH, ActivationName, Dim, InitializerName, LayerKind, Param, Shape, ShapeMismatch, initializer_setting, sequence_features, setting, show


@dataclass(frozen=True)
class Conv1D(LayerKind):
    """A convolution over time; padding `same` keeps ceil(T / stride) steps, as in Keras."""

    filters: int = setting(shared="units")
    kernel_size: int = setting(shared="units")
    stride: int = setting(1, shared="units")
    padding: Literal["same", "valid"] = setting("same")
    activation: ActivationName = setting("linear", shared="activation")
    initializer: InitializerName | None = initializer_setting()
    kind: ClassVar[str] = "conv1d"
    takes_sequences: ClassVar[bool] = True

    def out_length(self, steps: int) -> int:
        """Output steps for `steps` input steps (also how a sequence length maps)."""
        if self.padding == "same":
            return -(-steps // self.stride)
        return max(0, (steps - self.kernel_size) // self.stride + 1)

    def same_padding(self, steps: int) -> tuple[int, int]:
        """(left, right) zero padding for `same`, TensorFlow's split: extra on the right."""
        total = max((self.out_length(steps) - 1) * self.stride + self.kernel_size - steps, 0)
        return total // 2, total - total // 2

    def output_shape(self, shape: Shape) -> Shape:
        sequence_features(shape)
        if isinstance(shape[1], int) and self.padding == "valid" and shape[1] < self.kernel_size:
            raise ShapeMismatch(
                f"with padding 'valid' needs at least kernel_size={self.kernel_size} timesteps, got {show(shape)}"
            )
        return (BATCH, self._out_time(shape[1]), self.filters)

    def _out_time(self, steps: Dim) -> Dim:
        if isinstance(steps, int):
            return self.out_length(steps)
        if self.stride == 1 and self.padding == "same":
            return steps
        if self.padding == "same":
            return f"ceil({steps}/{self.stride})"
        return f"({steps}-{self.kernel_size})//{self.stride}+1"

    def params(self, prefix: str, shape: Shape) -> list[Param]:
        kernel = (self.filters, sequence_features(shape), self.kernel_size)
        return [Param(f"{prefix}.weight", kernel, "glorot_uniform"), Param(f"{prefix}.bias", (self.filters,))]

    def streaming_problem(self) -> str:
        if self.kernel_size > 1 or self.stride > 1:
            return "a conv1d wider than one step sees across chunk borders, so it cannot stream"
        return ""

    def describe(self) -> str:
        return f"conv1d({self.filters}, k={self.kernel_size}, s={self.stride}, {self.padding})"


Kind: TypeAlias = Conv1D
KINDS = (Conv1D,)
