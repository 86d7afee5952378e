"""The typed intermediate representation every backend consumes.

A spec compiles to one `Model`: frozen dataclasses, the closed set of layer kinds
defined in `rnnc.layers` and every tensor shape known. Shapes include the batch axis
and use the symbols `BATCH` and `TIME` where a size is only known at run time. Parameter names are fixed here
(`layers.<index>.<param>`, in PyTorch's layout) because the weights file and every
backend share them. This module imports nothing of torch or onnx.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias

# The layer kinds are defined in rnnc.layers (settings, shape rule, parameters); the IR
# names them here so that backends read one module.
from .layers import (  # noqa: F401  (re-exported)
    ALL_KINDS, GRAPH_KINDS, GRU, LAYER_KINDS, LSTM, RECURRENT_KINDS, Activation, Add, Attention, Average, Concatenate,
    Conv1D, Dense, Dropout, Embedding, Layer, LayerNorm, Masking, Multiply, Normalization, Pool, Recurrent, RepeatVector,
    SimpleRNN, skips_steps,
)
from .layers.base import ACTIVATIONS, BATCH, INITIALIZERS, TIME, ActivationName, Dim, InitializerName, Param, Shape  # noqa: F401

# --- the graph ----------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """One layer of the spec with its shapes and parameters resolved.

    `masked` says whether this layer's input carries per-sequence lengths (variable
    length input or `mask_zero`); padded steps must not change its result.
    """

    index: int
    layer: Layer
    input_shape: Shape
    output_shape: Shape
    params: tuple[Param, ...] = ()
    masked: bool = False
    # A graph's node (spec version 2) names what it reads; a v1 chain's reads the node before it.
    name: str = ""  # the spec's `name`, or ""
    sources: tuple[str, ...] = ()  # the keys of the values it reads (inputs, nodes), its main input first
    input_shapes: tuple[Shape, ...] = ()  # their shapes, in that order
    state_from: str = ""  # the key of the recurrent node whose final state is its initial state

    @property
    def key(self) -> str:
        """How the graph refers to this node: its name, or `layers[<index>]`."""
        return self.name or f"layers[{self.index}]"

    @property
    def param_count(self) -> int:
        return sum(p.size for p in self.params)

    def param(self, short_name: str) -> Param:
        wanted = f"layers.{self.index}.{short_name}"
        for p in self.params:
            if p.name == wanted:
                return p
        raise KeyError(wanted)


def output_activation(nodes: tuple[Node, ...] | list[Node]) -> tuple[str | None, Node | None]:
    """The activation the output comes out of, and the node that applies it.

    Trailing dropout is looked through (it only rescales while training). When the last
    other layer applies no activation (a recurrent layer, pool, layer_norm...), the
    activation is None and the node is that layer.
    """
    for node in reversed(nodes):
        match node.layer:
            case Dropout():
                continue
            case Dense() | Activation() | Conv1D():
                return node.layer.activation, node
            case _:
                return None, node
    return None, None


@dataclass(frozen=True)
class Input:
    """As written in the spec: float [timesteps, features] or int64 [timesteps] is a
    sequence; in a graph also float [features] (static features) and int64 [] (one id)."""

    shape: tuple[int | None, ...]
    dtype: Literal["float32", "int64"] = "float32"
    name: str = "x"

    @property
    def sequence(self) -> bool:
        return len(self.shape) == (1 if self.dtype == "int64" else 2)

    @property
    def variable_length(self) -> bool:
        return self.sequence and self.shape[0] is None

    @property
    def tensor_shape(self) -> Shape:
        if not self.sequence:
            return (BATCH, *self.shape)  # type: ignore[arg-type]
        return (BATCH, TIME if self.shape[0] is None else self.shape[0], *self.shape[1:])

    @property
    def lengths_name(self) -> str:
        """The name of its lengths: the array in a data file (`<name>_lengths`; v1's `lengths`)."""
        return "lengths" if self.name == "x" else f"{self.name}_lengths"


# --- training settings --------------------------------------------------------------

LossName: TypeAlias = Literal[
    "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy",
    "mse", "mae", "huber",
]
LOSSES: tuple[str, ...] = LossName.__args__  # type: ignore[attr-defined]
CLASSIFICATION_LOSSES = ("binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy")
METRICS = ("accuracy", "mae", "mse", "rmse", "precision", "recall", "f1", "auc")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
LOGGERS = ("tensorboard", "mlflow")  # training.log / rnnc train --log: experiment trackers (rnnc.tracking)


@dataclass(frozen=True)
class Loss:
    type: LossName
    delta: float = 1.0  # huber only
    from_logits: bool = False  # the model's output is a logit, not a probability

    @property
    def is_classification(self) -> bool:
        return self.type in CLASSIFICATION_LOSSES


@dataclass(frozen=True)
class Optimizer:
    """Keras names and defaults; `None` for a setting the optimizer does not have."""

    type: Literal["sgd", "adam", "adamw", "rmsprop", "adagrad"]
    lr: float = 0.001
    momentum: float = 0.0  # sgd, rmsprop
    nesterov: bool = False  # sgd
    weight_decay: float = 0.0  # adamw defaults to 0.004 as in Keras
    beta_1: float = 0.9  # adam, adamw
    beta_2: float = 0.999  # adam, adamw
    rho: float = 0.9  # rmsprop
    epsilon: float = 1e-7  # adam, adamw, rmsprop, adagrad (Keras's default)


@dataclass(frozen=True)
class EarlyStopping:
    monitor: str = "val_loss"
    patience: int = 3
    min_delta: float = 0.0
    mode: Literal["min", "max"] = "min"  # max for accuracy-like monitors
    restore_best: bool = True


@dataclass(frozen=True)
class LRSchedule:
    type: Literal["step", "cosine", "plateau"]
    step_size: int = 10  # step: epochs between decays
    gamma: float = 0.1  # step: decay factor
    min_lr: float = 0.0  # cosine floor; plateau floor
    factor: float = 0.1  # plateau: decay factor
    patience: int = 2  # plateau: epochs without improvement
    monitor: str = "val_loss"  # plateau


@dataclass(frozen=True)
class Training:
    epochs: int = 10
    batch_size: int = 32
    seed: int = 0
    shuffle: bool = True
    bucket_by_length: bool = False  # batches from length-sorted chunks of each epoch's order (rnnc_torch.batching)
    validation_split: float = 0.0
    gradient_clip: float | None = None
    early_stopping: EarlyStopping | None = None
    lr_schedule: LRSchedule | None = None
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # autocast on CUDA when not fp32
    initializer: InitializerName = "adaptive"  # how fresh weights start (rnnc.initial); a layer's own `initializer` wins
    kernels: Literal["auto", "torch"] = "auto"  # torch: no CPU training path of rnnc's own (rnnc_torch.cpu)
    tbptt: int | None = None  # truncated backpropagation: chunks of this many steps, state carried across
    log: tuple[str, ...] = ()  # trackers of LOGGERS that record the run; they change nothing in it


@dataclass(frozen=True)
class CsvWindows:
    """How a `.csv` time series becomes (window, target) samples."""

    features: tuple[str, ...] | None = None  # columns fed as input; None = every column
    targets: tuple[str, ...] = ()  # columns to predict
    window: int = 1  # input steps per sample, equal to input.shape[0]
    horizon: int = 1  # steps after the window's last step that are predicted
    all_steps: bool = False  # True: every step 1..horizon is a target (direct multi-step), not only the last


@dataclass(frozen=True)
class TextData:
    """How `.csv` / `.jsonl` rows of raw text become token ids (id 0 pads, id 1 is unknown)."""

    column: str = "text"  # the text column (csv) or field (jsonl)
    label: str = "label"  # the label column or field
    tokenizer: Literal["char", "word"] = "char"
    max_vocab: int = 10_000  # most frequent training tokens kept, besides padding and unknown
    max_length: int = 100  # tokens past this are cut
    lowercase: bool = True


@dataclass(frozen=True)
class Data:
    """Resolved, absolute paths (the spec writes them relative to its own file)."""

    train: str | None = None
    validation: str | None = None
    test: str | None = None
    csv: CsvWindows | None = None
    text: TextData | None = None


# The opsets the ONNX backend writes (LayerNormalization and Reduce* with axes inputs
# need 18); the schema's export.opset bounds are these (tests/core/test_opsets.py).
EXPORT_OPSETS = range(18, 24)


@dataclass(frozen=True)
class Export:
    opset: int = 21
    streaming: bool = False
    quantize: Literal["none", "int8"] = "none"  # int8: onnxruntime dynamic quantisation


@dataclass(frozen=True)
class Feedback:
    """An output that predicts its `input`'s next step (spec version 2's `feedback:`):
    decoding starts with id `start`, feeds each prediction back, stops at `end` or after
    `max_length` steps (None where the spec leaves them to the data)."""

    input: str
    start: int | None = None
    end: int | None = None
    max_length: int | None = None


@dataclass(frozen=True)
class Output:
    """A graph's output: the node it is, and its loss, weight in the sum and metrics."""

    name: str
    node: int  # the node's index
    loss: Loss
    loss_weight: float = 1.0
    metrics: tuple[str, ...] = ()
    feedback: Feedback | None = None


@dataclass(frozen=True)
class Graph:
    """What spec version 2 adds to a model: named inputs, named outputs, and the problems
    worth a warning (an input or layer nothing reads)."""

    inputs: tuple[Input, ...]
    outputs: tuple[Output, ...]
    warnings: tuple[str, ...] = ()  # "file:line:col: message"

    def input(self, name: str) -> Input:
        return next(i for i in self.inputs if i.name == name)


@dataclass(frozen=True)
class Model:
    name: str
    input: Input
    nodes: tuple[Node, ...]
    loss: Loss
    optimizer: Optimizer
    metrics: tuple[str, ...] = ()
    training: Training = field(default_factory=Training)
    data: Data = field(default_factory=Data)
    export: Export = field(default_factory=Export)
    description: str = ""
    spec_hash: str = ""  # sha256 of the resolved spec, carried into artifacts
    # Spec version 2: the graph's inputs and outputs; None for a v1 chain, whose one input
    # is `input` and whose output (the last node) has `loss` and `metrics`. For a graph,
    # `input`, `loss` and `metrics` are its first input's and first output's.
    graph: Graph | None = None

    @property
    def inputs(self) -> tuple[Input, ...]:
        return self.graph.inputs if self.graph else (self.input,)

    @property
    def outputs(self) -> tuple[Output, ...]:
        if self.graph:
            return self.graph.outputs
        return (Output("y", self.nodes[-1].index if self.nodes else -1, self.loss, 1.0, self.metrics),)

    def node(self, key: str) -> Node:
        return next(n for n in self.nodes if n.key == key)

    @property
    def output_shape(self) -> Shape:
        return self.nodes[-1].output_shape if self.nodes else self.input.tensor_shape

    @property
    def params(self) -> tuple[Param, ...]:
        return tuple(p for node in self.nodes for p in node.params)

    @property
    def param_count(self) -> int:
        return sum(node.param_count for node in self.nodes)

    @property
    def variable_length(self) -> bool:
        """Whether the model's input carries per-sequence lengths."""
        return any(node.masked for node in self.nodes)

    @property
    def sequence_output(self) -> bool:
        """Whether the model outputs one prediction per timestep (sequence labelling)."""
        return len(self.output_shape) == 3
