"""The closed set of layer kinds, each defined once: settings, shape rule, parameters.

A kind lives in the module of its family (`embedding`, `recurrent`, `core`,
`normalization`, `convolution`, `pooling`), as a frozen dataclass built on `base.LayerKind`; the
family's `Kind` union and `KINDS` tuple name it, and this module joins the families.
Everything else reads the definitions: `rnnc.shapes` infers nodes with them, the JSON
Schema's layer branches are generated from them (`python -m rnnc.schema --write`),
`rnnc.validate` and the ONNX exporter ask them whether they can stream. Adding a kind
to a family is its class there plus one lowering per backend (docs/plugins.md).
"""

from __future__ import annotations

from typing import TypeAlias

from . import convolution, core, embedding, normalization, pooling, recurrent
from .base import LayerKind
from .convolution import Conv1D
from .core import Activation, Dense, Dropout
from .embedding import Embedding
from .normalization import LayerNorm
from .pooling import Pool
from .recurrent import GRU, LSTM, Recurrent, SimpleRNN

Layer: TypeAlias = embedding.Kind | recurrent.Kind | core.Kind | normalization.Kind | convolution.Kind | pooling.Kind
# The families in the order the schema lists their kinds (and error messages with it).
FAMILIES = (embedding, recurrent, core, normalization, convolution, pooling)
LAYER_KINDS: dict[str, type[LayerKind]] = {
    cls.kind: cls
    for family in FAMILIES
    for cls in family.KINDS
}
RECURRENT_KINDS = tuple(kind for kind, cls in LAYER_KINDS.items() if issubclass(cls, Recurrent))

__all__ = [
    "GRU", "LAYER_KINDS", "LSTM", "RECURRENT_KINDS", "Activation", "Conv1D", "Dense", "Dropout", "Embedding",
    "Layer", "LayerKind", "LayerNorm", "Pool", "Recurrent", "SimpleRNN",
]
