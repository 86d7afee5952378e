"""rnnc's ONNX backend: the IR and its weights lowered straight to an ONNX model.

No torch anywhere: the graph is built with `onnx.helper` from the IR and the weights
file's numpy arrays, on the native `RNN`, `LSTM` and `GRU` operators, with dynamic
batch and time axes. `lower` builds the `ModelProto`; `export` (the CLI calls it
through the backend at the end of `rnnc train`) and the backend's `compile` also
apply the spec's `export.quantize` (`quantize.py`), and `export` writes the model
atomically. `backend` is the plugin object that the `rnnc.backends` entry point
`rnnc_onnx:backend` loads; it imports no other backend. See docs/deploy.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx

from rnnc import ir
from rnnc.artifacts import atomic_write_bytes
from rnnc.decoding import decoding_plan, decoding_problems
from rnnc.errors import Problem, SpecError, UsageError
from rnnc.initial import initial_weights
from rnnc.text import Vocab

from .decode import companions, with_entry
from .graph import Classes
from .lower import OPSETS, export_problems, lower
from .metadata import sealed
from .quantize import quantize_int8

__all__ = ["OPSETS", "OnnxBackend", "backend", "deployable", "export", "export_problems", "lower", "quantize_int8"]


def export(
    model: ir.Model,
    weights: Mapping[str, np.ndarray],
    path: str | os.PathLike[str],
    classes: Classes | None = None,
    vocab: Vocab | None = None,
) -> onnx.ModelProto:
    """Lower `model` with `weights`, quantise it if `export.quantize` says so, and write
    it to `path` atomically; returns the model. `classes` and `vocab` (raw-text models)
    go into its metadata; a graph's `classes` map an output's name to its class names.
    A generative model (an output with `feedback:`) also gets its decoding graphs,
    `X.step.onnx` and, with an encoder side, `X.encoder.onnx` (`decode.py`)."""
    proto = deployable(model, weights, classes=classes, vocab=vocab)
    plan = decoding_plan(model)
    if plan is not None:  # the decoding graphs first: a model.onnx on disk has its companions
        if problems := decoding_problems(model):  # rnnc check refuses these specs; an IR built by hand may have them
            raise SpecError(problems)
        entry, graphs = companions(model, weights, plan, path, vocab)
        for file, graph in graphs.items():
            atomic_write_bytes(file, graph.SerializeToString())
        proto = with_entry(proto, entry)
    atomic_write_bytes(path, proto.SerializeToString())
    return proto


def deployable(
    model: ir.Model, weights: Mapping[str, np.ndarray], classes: Classes | None = None, vocab: Vocab | None = None
) -> onnx.ModelProto:
    """`lower`, then the spec's `export.quantize` (int8: see `quantize.py`, then the
    checksum in the metadata again, `metadata.sealed`)."""
    proto = lower(model, weights, classes=classes, vocab=vocab)
    return sealed(quantize_int8(proto)) if model.export.quantize == "int8" else proto


class OnnxBackend:
    """The `onnx` backend: compiles an IR model to an ONNX `ModelProto` (see
    `rnnc.plugins.ExportingBackend` for what "export" promises)."""

    name = "onnx"
    capabilities = frozenset({"export", "infer"})

    def compile(self, model: ir.Model, weights: Mapping[str, np.ndarray] | None = None, **options: Any) -> onnx.ModelProto:
        """The ONNX model; without `weights`, freshly initialised ones (numpy, seeded by
        `training.seed`). Options: `classes`, the output's class names (a graph's: output
        name -> names), and `vocab`, the raw-text vocabulary (`rnnc.text.Vocab`), for the
        metadata."""
        _check_options(options)
        return deployable(model, initial_weights(model) if weights is None else weights, **options)

    def check(self, model: ir.Model) -> list[Problem]:
        """What keeps `model` from being exported with its `export` settings (`rnnc train`
        asks before its first step)."""
        return export_problems(model)

    def export(self, model: ir.Model, weights: Mapping[str, np.ndarray] | None, path: str | os.PathLike[str], **options: Any) -> None:
        """`compile`, then write the model to `path` atomically (`rnnc compile`, and
        `model.onnx` at the end of `rnnc train`)."""
        _check_options(options)
        export(model, initial_weights(model) if weights is None else weights, path, **options)


def _check_options(options: Mapping[str, Any]) -> None:
    unknown = sorted(set(options) - {"classes", "vocab"})
    if unknown:
        raise UsageError(f"onnx backend: unknown option(s) {', '.join(unknown)}; it takes: classes, vocab")


backend = OnnxBackend()
