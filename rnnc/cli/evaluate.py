"""`rnnc evaluate RUN_DIR|MODEL.onnx DATA`: the spec's loss and metrics on a data file.

The model runs on onnxruntime (`rnnc.runtime`) and the numbers are computed with numpy
(`rnnc.metrics`, the very definitions the trainer logs), so evaluating needs no torch.
The spec comes from the run directory (`spec.yaml`, the one beside MODEL.onnx, or
`--spec`): its model, loss, metrics and data settings (`data.csv` windows, `data.text`)
say how DATA becomes samples; its training section and data files do not matter here.
A model trained on raw text carries its vocabulary and class names, so DATA may be a
text `.csv` or `.jsonl` with labels. Bad input ends with one line and exit status 2.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rnnc.errors import DataError, UsageError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluate", help="the spec's loss and metrics of a trained model on a data file (onnxruntime)")
    parser.add_argument("target", metavar="RUN_DIR|MODEL", help="a run directory of rnnc train, or a model.onnx")
    parser.add_argument("data", metavar="DATA", help="labelled data in the spec's format (.npz, .csv, .jsonl)")
    parser.add_argument("--spec", metavar="SPEC", help="the spec the model was trained from (default: spec.yaml of the run)")
    parser.add_argument("--batch-size", type=int, default=256, metavar="N", help="sequences per run (default: 256)")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    model_path, spec_path = locate(args.target, args.spec)
    results = evaluate(model_path, spec_path, args.data, batch_size=args.batch_size)
    if args.json:
        print(json.dumps(results))
    else:
        count = results.pop("samples")
        print(f"{args.data}: {count} samples")
        print("  ".join(f"{name} {value:.4f}" for name, value in results.items()))
    return 0


def locate(target: str, spec: str | None) -> tuple[Path, Path]:
    """(model.onnx, spec) for a run directory or a model file."""
    path = Path(target)
    if path.is_dir():
        model = path / "model.onnx"
        if not model.is_file():
            raise UsageError(f"{path}: no model.onnx in this run directory (is the rnnc_onnx backend installed?)")
    elif path.is_file():
        model = path
    else:
        raise UsageError(f"{target}: no such run directory or model file")
    spec_path = Path(spec) if spec else model.parent / "spec.yaml"
    if not spec_path.is_file():
        raise UsageError(f"{spec_path}: no such spec; pass the spec the model was trained from with --spec")
    return model, spec_path


def evaluate(model_path: Path, spec_path: Path, data: str, batch_size: int = 256) -> dict[str, Any]:
    """`{samples, loss, <metric>...}` of the model at `model_path` on `data`."""
    import numpy as np

    from rnnc.data import load_file, output_steps
    from rnnc.metrics import compute_metrics, loss_value, output_probabilities
    from rnnc.runtime import Predictor

    if not Path(data).is_file():
        raise DataError(f"{data}: no such file")
    model = _spec_for(spec_path, data)
    predictor = Predictor(model_path)
    dataset = load_file(model, data, vocab=predictor.vocab, classes=predictor.classes)
    try:
        outputs = predictor.predict(dataset.x, dataset.lengths, batch_size)
    except DataError as err:
        raise DataError(f"{data}: {err} (is {model_path} the model of {spec_path}?)") from None
    mask = None
    if dataset.lengths is not None and model.sequence_output:
        steps = output_steps(model, dataset.x.shape[1])
        mask = np.arange(steps)[None, :] < np.asarray(output_steps(model, dataset.lengths))[:, None]
    results: dict[str, Any] = {"samples": len(dataset), "loss": loss_value(model.loss, outputs, dataset.y, mask)}
    probs = output_probabilities(model.loss, outputs)
    results.update(compute_metrics(model.metrics, model.loss, probs, dataset.y, mask))
    return results


def _spec_for(spec_path: Path, data: str) -> Any:
    """The spec's IR with `data` as its only data file and no training settings: those
    may name files or monitors that evaluating has no use for."""
    from rnnc.loader import load_file
    from rnnc.spec import compile_document

    doc = load_file(spec_path)
    if isinstance(doc.data, dict):
        section = doc.data.get("data")
        kept = {k: v for k, v in section.items() if k not in ("train", "validation", "test")} if isinstance(section, dict) else {}
        doc.data["data"] = {**kept, "test": str(Path(data).resolve())}
        doc.data.pop("training", None)
    return compile_document(doc, spec_path.resolve().parent)
