"""The closed set of layer kinds, each defined once: settings, shape rule, parameters.

A kind lives in the module of its family (`embedding`, `recurrent`, `core`,
`normalization`, `convolution`, `pooling`, `masking`), as a frozen dataclass built on `base.LayerKind`; the
family's `Kind` union and `KINDS` tuple name it, and this module joins the families.
Everything else reads the definitions: `rnnc.shapes` infers nodes with them, the JSON
Schema's layer branches are generated from them (`python -m rnnc.schema --write`),
`rnnc.validate` and the ONNX exporter ask them whether they can stream. Adding a kind
to a family is its class there plus one lowering per backend (docs/plugins.md).
"""

from __future__ import annotations

from typing import TypeAlias

from . import attention, convolution, core, embedding, masking, merge, normalization, pooling, recurrent
from .attention import Attention
from .base import LayerKind
from .convolution import Conv1D
from .core import Activation, Dense, Dropout
from .embedding import Embedding
from .masking import Masking, skips_steps
from .merge import Add, Average, Concatenate, Multiply, RepeatVector
from .normalization import LayerNorm, Normalization
from .pooling import Pool
from .recurrent import GRU, LSTM, Recurrent, SimpleRNN

Layer: TypeAlias = (
    embedding.Kind | recurrent.Kind | core.Kind | normalization.Kind | convolution.Kind | pooling.Kind
    | merge.Kind | attention.Kind | masking.Kind
)
# The families in the order the schema lists their kinds (and error messages with it).
FAMILIES = (embedding, recurrent, core, normalization, convolution, pooling, merge, attention, masking)
# Every kind; the kinds of a v1 chain; the kinds spec version 2 (graphs) adds.
ALL_KINDS: dict[str, type[LayerKind]] = {
    cls.kind: cls
    for family in FAMILIES
    for cls in family.KINDS
}
LAYER_KINDS: dict[str, type[LayerKind]] = {kind: cls for kind, cls in ALL_KINDS.items() if not cls.graph_only}
GRAPH_KINDS: dict[str, type[LayerKind]] = {kind: cls for kind, cls in ALL_KINDS.items() if cls.graph_only}
RECURRENT_KINDS = tuple(kind for kind, cls in LAYER_KINDS.items() if issubclass(cls, Recurrent))

__all__ = [
    "ALL_KINDS", "GRAPH_KINDS", "GRU", "LAYER_KINDS", "LSTM", "RECURRENT_KINDS", "Activation", "Add", "Attention",
    "Average", "Concatenate", "Conv1D", "Dense", "Dropout", "Embedding", "Layer", "LayerKind", "LayerNorm", "Masking", "Multiply",
    "Normalization", "Pool", "Recurrent", "RepeatVector", "SimpleRNN", "skips_steps",
]
