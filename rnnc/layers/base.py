"""What every layer kind is made of: shapes, parameters, settings and the `LayerKind` base.

A layer kind is a frozen dataclass whose fields are its spec settings, each declared
with `setting()` (its type comes from the annotation; its default, range and
description from the call), and whose methods are its rules: `output_shape` (raises
`ShapeMismatch`), `params` (names, shapes and initialiser of its weights),
`streaming_problem` (why it cannot run chunk by chunk, or "") and `describe` (its cell
in `rnnc check`'s summary). The JSON Schema's layer branches are generated from these
(rnnc.schema.generate). Shapes include the batch axis and use `BATCH` and `TIME`
where a size is only known at run time.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeAlias

BATCH = "batch"
TIME = "time"

Dim: TypeAlias = int | str
Shape: TypeAlias = tuple[Dim, ...]

ActivationName: TypeAlias = Literal[
    "linear", "relu", "sigmoid", "tanh", "softmax", "log_softmax", "gelu", "elu", "selu",
    "leaky_relu", "softplus", "silu", "hard_sigmoid",
]
ACTIVATIONS: tuple[str, ...] = ActivationName.__args__  # type: ignore[attr-defined]

# Ranges several settings share, by name: the schema keeps them as `$defs` so an
# editor shows one definition, and a setting names one with `setting(shared=...)`.
RANGES: dict[str, dict[str, Any]] = {
    "units": {"type": "integer", "minimum": 1},
    "rate": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
    "positiveNumber": {"type": "number", "exclusiveMinimum": 0},
    "activation": {"enum": list(ACTIVATIONS)},
}

# How a parameter starts (Keras's initialisers): glorot_uniform over fans computed from
# the shape (the trailing axes are the receptive field), orthogonal, zeros, ones,
# uniform +-0.05, and an LSTM's input bias, zeros with the forget gate's quarter at 1.
Init: TypeAlias = Literal["glorot_uniform", "orthogonal", "zeros", "ones", "uniform", "forget_bias"]

# The schemes that turn those declarations into distributions (rnnc.initial): a spec's
# `training.initializer`, or a layer's own `initializer` setting, which wins.
InitializerName: TypeAlias = Literal["keras", "torch", "torch_orthogonal", "keras_lstm", "keras_recurrent", "hybrid", "adaptive"]
INITIALIZERS: tuple[str, ...] = InitializerName.__args__  # type: ignore[attr-defined]


# What each scheme is, for the schema's descriptions (rnnc.initial defines them).
INITIALIZER_HELP = ("keras (glorot_uniform, orthogonal recurrent kernels, zero biases, LSTM forget bias 1), "
                    "torch (PyTorch's defaults), torch_orthogonal (torch's with orthogonal recurrent kernels and "
                    "LSTM forget bias 1), keras_lstm (keras for LSTM layers, torch for the others), keras_recurrent "
                    "(keras for recurrent layers, torch for the others), hybrid (keras, except simple_rnn and gru "
                    "layers, which take torch's), adaptive (hybrid, and torch's for a dense regression output)")


def initializer_setting() -> Any:
    """The `initializer` setting of a kind with weights; None: the spec's `training.initializer`."""
    return setting(None, description=f"How this layer's weights start (absent: training.initializer): {INITIALIZER_HELP}.")


@dataclass(frozen=True)
class Param:
    name: str  # e.g. "layers.0.weight_ih_reverse"
    shape: tuple[int, ...]
    init: Init = "zeros"
    trainable: bool = True  # False: set from the training data before training (normalization's statistics)

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


class ShapeMismatch(Exception):
    """A layer cannot take the shape it is given; the message follows the layer's label."""


def show(shape: Shape) -> str:
    """Keras-like rendering without the batch axis: `[10, 32]`, `[time, 32]`."""
    return show_dims(shape[1:])


def show_dims(dims: tuple[Dim | None, ...] | list[Dim | None]) -> str:
    """Sizes as a spec writes them: `[null, 3]` (YAML's null, never Python's None)."""
    return "[" + ", ".join("null" if d is None else str(d) for d in dims) + "]"


def setting(default: Any = dataclasses.MISSING, *, shared: str | None = None, description: str | None = None,
            reference: bool = False, **bounds: float) -> Any:
    """A spec setting: without `default` it is required; `shared` names one of `RANGES`,
    `bounds` are JSON Schema's (minimum, exclusiveMaximum...). A `reference` names
    another value of the graph (an input or a layer; "" when absent), which the graph
    reads as one more input of the layer (attention's `query`, repeat_vector's `like`)."""
    assert shared is None or shared in RANGES, shared
    meta = {"shared": shared, "description": description, "bounds": bounds, "reference": reference}
    return dataclasses.field(default=default, metadata={"setting": meta})


def sequence_features(shape: Shape) -> int:
    """The feature size of a `[batch, time, features]` input, or a ShapeMismatch."""
    if len(shape) != 3:
        raise ShapeMismatch(f"expects input [timesteps, features], got {show(shape)}")
    return last_axis(shape)


def last_axis(shape: Shape) -> int:
    features = shape[-1]
    assert isinstance(features, int), shape  # only the batch and time axes are symbolic
    return features


class LayerKind:
    """The rules a layer kind defines; the defaults suit a kind without weights that
    keeps its input's shape and streams.

    A kind of a graph (spec version 2) may read several values: a merge takes a list
    (`merges`), attention its value and a `query` (settings declared `reference`). Its
    rules then see every input's shape, in order: `output_shapes` and `params_for`,
    which for a kind with one input are `output_shape` and `params`.
    """

    kind: ClassVar[str]
    schema_name: ClassVar[str | None] = None  # its `$defs` entry, when not `kind`
    takes_sequences: ClassVar[bool] = False  # wants [timesteps, features] (for the lost-time-axis hint)
    merges: ClassVar[bool] = False  # `input:` is a list of at least two values
    graph_only: ClassVar[bool] = False  # introduced by spec version 2: not a kind of a v1 chain

    def output_shape(self, shape: Shape) -> Shape:
        return shape

    def params(self, prefix: str, shape: Shape) -> list[Param]:
        return []

    def output_shapes(self, shapes: tuple[Shape, ...]) -> Shape:
        return self.output_shape(shapes[0])

    def params_for(self, prefix: str, shapes: tuple[Shape, ...]) -> list[Param]:
        return self.params(prefix, shapes[0])

    def references(self) -> tuple[str, ...]:
        """The values this layer reads besides its `input`, as named in its settings."""
        return tuple(
            value for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if f.metadata.get("setting", {}).get("reference") and (value := getattr(self, f.name))
        )

    def streaming_problem(self) -> str:
        return ""

    def setting_problems(self) -> list[tuple[str, str]]:
        """Settings that do not apply together, as `(setting, why)`: what the schema,
        which checks each setting alone, cannot see."""
        return []

    def describe(self) -> str:
        return self.kind
