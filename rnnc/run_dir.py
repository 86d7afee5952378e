"""A run directory's shared files: where the training backend and the exporter meet.

`rnnc train` has one backend train and another export: the training backend leaves
the resolved spec, the weights under their IR names (the class names, when the data
named them, and the epoch in their metadata) and, for raw text, the vocabulary; the
CLI then reads them back (`export_inputs`) and hands them to the exporting backend,
which writes `model.onnx` beside them. Neither backend knows the other, only these
names. A backend's own files (torch's `checkpoint.pt`) are its business.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rnnc import ir
from rnnc.artifacts import load_weights, load_weights_metadata, stored_classes
from rnnc.text import VOCAB_FILE, Vocab

SPEC, WEIGHTS, METRICS, MODEL = "spec.yaml", "weights.safetensors", "metrics.jsonl", "model.onnx"
VOCAB = VOCAB_FILE  # raw-text runs: the training data's vocabulary (also in model.onnx)


def export_command(run: Path) -> str:
    """The command that writes a run's model.onnx from its saved weights."""
    return f"rnnc compile {run / SPEC} --backend onnx --weights {run / WEIGHTS} -o {run / MODEL}"


def saved_epoch(run: Path) -> str:
    """The epoch whose weights `run` holds, as its weights file records it ("?" if not)."""
    return load_weights_metadata(run / WEIGHTS).get("epoch", "?")


def export_inputs(run: Path, model: ir.Model) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The saved weights of `run`, checked against `model`, and the export options they
    were trained with: `classes` (from the weights' metadata; a graph's by output) and
    `vocab` (raw text), each only when the run has one."""
    weights = load_weights(run / WEIGHTS, model)
    options: dict[str, Any] = {}
    if model.graph is not None:  # a graph's class names are kept per output
        from rnnc.graph_data import stored_output_classes

        classes: Any = stored_output_classes(run / WEIGHTS)
    else:
        classes = stored_classes(run / WEIGHTS)
    if classes is not None:
        options["classes"] = classes
    if (run / VOCAB).exists():
        options["vocab"] = Vocab.from_json((run / VOCAB).read_text(encoding="utf-8"), str(run / VOCAB))
    return weights, options
