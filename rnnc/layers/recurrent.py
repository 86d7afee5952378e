"""The recurrent layer kinds: simple_rnn, lstm and gru, and the settings they share.

Their weights are PyTorch's layout: `weight_ih`, `weight_hh`, `bias_ih`, `bias_hh` with
the gates stacked on the first axis, and a `_reverse` copy for the backward direction
(a GRU with `reset_after: false` has Keras's one bias, `bias_ih`). The Keras options
(`recurrent_activation`, `reset_after`, `recurrent_dropout`, `merge_mode`) mean what
they mean in Keras 3; docs/spec.md has the equations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, TypeAlias

from .base import BATCH, InitializerName, LayerKind, Param, Shape, initializer_setting, sequence_features, setting


GateActivation: TypeAlias = Literal["sigmoid", "hard_sigmoid", "keras2_hard_sigmoid"]
# The hard sigmoids as clip(slope * x + offset, 0, 1): Keras 3's is relu6(x + 3) / 6, Keras
# 2's (and TensorFlow 1's, the gates' default in Keras up to 2.2) was steeper.
HARD_SIGMOIDS: dict[str, tuple[float, float]] = {"hard_sigmoid": (1.0 / 6.0, 0.5), "keras2_hard_sigmoid": (0.2, 0.5)}


@dataclass(frozen=True)
class Recurrent(LayerKind):
    """Settings shared by the three recurrent kinds."""

    units: int = setting(shared="units")
    return_sequences: bool = setting(False)
    bidirectional: bool = setting(False)
    dropout: float = setting(0.0, shared="rate", description="Drops the layer's inputs while training.")
    use_bias: bool = setting(True)
    recurrent_dropout: float = setting(
        0.0, shared="rate",
        description="Drops the recurrent state while training: one mask per sequence, reused at every step (Keras's).")
    merge_mode: Literal["concat", "sum", "mul", "ave"] = setting(
        "concat", description="How a bidirectional layer joins its two directions (Keras's Bidirectional merge_mode).")
    initializer: InitializerName | None = initializer_setting()
    gates: ClassVar[int] = 1
    input_bias: ClassVar[Literal["zeros", "forget_bias"]] = "zeros"
    takes_sequences: ClassVar[bool] = True

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        return self.units * self.directions if self.merge_mode == "concat" else self.units

    @property
    def keras_cell(self) -> bool:
        """Whether the cell differs from torch's own (its recurrent activation, GRU's
        reset gate or recurrent dropout): then no fused torch kernel computes it."""
        return self.recurrent_dropout > 0 or getattr(self, "recurrent_activation", "sigmoid") != "sigmoid" \
            or not getattr(self, "reset_after", True)

    def output_shape(self, shape: Shape) -> Shape:
        sequence_features(shape)
        return (*shape[:2], self.output_size) if self.return_sequences else (BATCH, self.output_size)

    def params(self, prefix: str, shape: Shape) -> list[Param]:
        features = sequence_features(shape)
        rows = self.gates * self.units
        params: list[Param] = []
        for suffix in ("", "_reverse")[: self.directions]:
            params.append(Param(f"{prefix}.weight_ih{suffix}", (rows, features), "glorot_uniform"))
            params.append(Param(f"{prefix}.weight_hh{suffix}", (rows, self.units), "orthogonal"))
            if self.use_bias:
                params.append(Param(f"{prefix}.bias_ih{suffix}", (rows,), self.input_bias))
                if getattr(self, "reset_after", True):
                    params.append(Param(f"{prefix}.bias_hh{suffix}", (rows,)))
        return params

    def setting_problems(self) -> list[tuple[str, str]]:
        if self.merge_mode != "concat" and not self.bidirectional:
            return [("merge_mode", f"{self.merge_mode} joins the two directions of a bidirectional layer; "
                                   "set bidirectional: true, or remove merge_mode")]
        return []

    def streaming_problem(self) -> str:
        return "a bidirectional layer needs the whole sequence, so it cannot stream" if self.bidirectional else ""

    def describe(self) -> str:
        flags = [f for f, on in (("bidirectional", self.bidirectional), ("sequences", self.return_sequences)) if on]
        flags += [f"merge {self.merge_mode}"] if self.merge_mode != "concat" else []
        gates = getattr(self, "recurrent_activation", "sigmoid")
        flags += [f"recurrent {gates}"] if gates != "sigmoid" else []
        flags += ["reset before"] if not getattr(self, "reset_after", True) else []
        return f"{self.kind}({self.units}{''.join(', ' + f for f in flags)})"


@dataclass(frozen=True)
class SimpleRNN(Recurrent):
    """An Elman network: h = activation(W x + U h + b)."""

    activation: Literal["tanh", "relu"] = setting("tanh")
    kind: ClassVar[str] = "simple_rnn"


@dataclass(frozen=True)
class LSTM(Recurrent):
    """Long short-term memory; gate order in the weights: i, f, g, o (PyTorch's)."""

    recurrent_activation: GateActivation = setting(
        "sigmoid", description="The gates' activation; hard_sigmoid is Keras 3's, clip(x / 6 + 0.5, 0, 1); "
                               "keras2_hard_sigmoid is Keras 2's and TensorFlow 1's, clip(0.2 x + 0.5, 0, 1).")
    gates: ClassVar[int] = 4
    input_bias: ClassVar[Literal["zeros", "forget_bias"]] = "forget_bias"  # Keras's unit_forget_bias
    kind: ClassVar[str] = "lstm"


@dataclass(frozen=True)
class GRU(Recurrent):
    """Gated recurrent unit; gate order in the weights: r, z, n (PyTorch's). The reset
    gate applies after the recurrent matmul (ONNX's linear_before_reset=1), or with
    `reset_after: false` before it, with one bias (Keras 2's and TensorFlow 1's GRU)."""

    recurrent_activation: GateActivation = setting(
        "sigmoid", description="The gates' activation; hard_sigmoid is Keras 3's, clip(x / 6 + 0.5, 0, 1); "
                               "keras2_hard_sigmoid is Keras 2's and TensorFlow 1's, clip(0.2 x + 0.5, 0, 1).")
    reset_after: bool = setting(
        True, description="false: the reset gate applies before the recurrent matmul and the layer has one bias, "
                          "bias_ih (Keras 2, TensorFlow 1).")
    gates: ClassVar[int] = 3
    kind: ClassVar[str] = "gru"


Kind: TypeAlias = SimpleRNN | LSTM | GRU
KINDS = (SimpleRNN, LSTM, GRU)
