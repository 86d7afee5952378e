"""`rnnc evaluate RUN_DIR|MODEL.onnx DATA`: the spec's loss and metrics on a data file.

The model runs on onnxruntime (`rnnc.runtime`) and the numbers are computed with numpy
(`rnnc.metrics`, the very definitions the trainer logs), so evaluating needs no torch.
The spec comes from the run directory (`spec.yaml`, the one beside MODEL.onnx, or
`--spec`): its model, loss, metrics and data settings (`data.csv` windows, `data.text`)
say how DATA becomes samples; its training section and data files do not matter here.
A model trained on raw text carries its vocabulary and class names, so DATA may be a
text `.csv` or `.jsonl` with labels. A single-label classifier also gets a confusion
matrix and per-class precision, recall and F1 (`rnnc.metrics.ClassReport`), and
`--per-sample` writes each sample's loss. A per-step classifier (sequence labelling)
also gets `exact_match`, the share of sequences right at every real step, beside the
per-step `accuracy` (`rnnc.metrics.sequence_scores`). A v2 graph is measured per output
(`evaluate_graph`). Bad input ends with one line per problem and exit status 2; a
problem with DATA names the argument, `DATA (FILE): ...`.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnc.errors import DataError, Problem, SpecError, UsageError

if TYPE_CHECKING:
    import numpy as np

    from rnnc.cli.evaluate_graph import GraphEvaluation

    from rnnc.metrics import ClassReport


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluate", help="the spec's loss and metrics of a trained model on a data file (onnxruntime)")
    parser.add_argument("target", metavar="RUN_DIR|MODEL", help="a run directory of rnnc train, or a model.onnx")
    parser.add_argument("data", metavar="DATA", help="labelled data in the spec's format (.npz, .parquet, a directory of .npy or .parquet files, .csv, .jsonl)")
    parser.add_argument("--spec", metavar="SPEC", help="the spec the model was trained from (default: spec.yaml of the run)")
    parser.add_argument("--batch-size", type=int, default=256, metavar="N", help="sequences per run (default: 256)")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    parser.add_argument("--per-sample", metavar="OUT.csv",
                        help="write each sample's loss (and true and predicted class) to a csv, in input order")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rnnc.cli.evaluate_graph import GraphEvaluation, write_graph_per_sample
    from rnnc.cli.evaluate_horizon import per_step_lines

    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.per_sample and Path(args.per_sample).resolve() == Path(args.data).resolve():
        raise UsageError(f"--per-sample {args.per_sample}: that is DATA itself; write the losses to another file")
    model_path, spec_path = locate(args.target, args.spec)
    result = measure(model_path, spec_path, args.data, batch_size=args.batch_size)
    if args.per_sample:
        if isinstance(result, GraphEvaluation):
            write_graph_per_sample(args.per_sample, result)
        else:
            write_per_sample(args.per_sample, result)
    if args.json:
        print(json.dumps(result.as_dict()))
        return 0
    print(f"{args.data}: {result.samples} samples")
    print("  ".join(f"{name} {value:.4f}" for name, value in result.scores.items()))
    if isinstance(result, Evaluation) and result.per_step:
        print()
        print("\n".join(per_step_lines(result.per_step)))
    reports = result.reports() if isinstance(result, GraphEvaluation) else [(None, result.report, result.steps)]
    for title, report, steps in reports:
        if report is not None:
            print()
            print("\n".join([*((f"{title}:",) if title else ()), *report_lines(report, steps=steps)]))
    return 0


@dataclass(frozen=True)
class Evaluation:
    """What `rnnc evaluate` found: the scores, and per sample what `--per-sample` writes."""

    samples: int
    scores: dict[str, float]  # loss, then the spec's metrics
    losses: np.ndarray  # [N]: each sample's loss
    report: ClassReport | None = None  # single-label classifiers only
    ids: tuple[np.ndarray, np.ndarray] | None = None  # (true, predicted) class ids, [N] or [N, T]
    lengths: np.ndarray | None = None  # [N] real output steps, variable-length sequence outputs
    steps: bool = False  # one prediction per timestep: the report counts steps
    per_step: dict[str, list[float]] | None = None  # data.csv.all_steps: each metric at each step of the horizon

    def as_dict(self) -> dict[str, Any]:
        return {"samples": self.samples, **self.scores, **(self.report.as_dict() if self.report else {}),
                **({"per_step": self.per_step} if self.per_step else {})}


def locate(target: str, spec: str | None, *, spec_optional: bool = False) -> tuple[Path, Path]:
    """(model.onnx, spec) for a run directory or a model file; `spec_optional`: a missing
    spec.yaml beside the model is no error (the caller checks `is_file()`), a missing --spec is."""
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
    if not spec_path.is_file() and not (spec_optional and not spec):
        raise UsageError(f"{spec_path}: no such spec; pass the spec the model was trained from with --spec")
    return model, spec_path


def evaluate(model_path: Path, spec_path: Path, data: str, batch_size: int = 256) -> dict[str, Any]:
    """`{samples, loss, <metric>..., classes, confusion_matrix, per_class, macro_avg,
    weighted_avg}` of the model at `model_path` on `data` (the report for single-label
    classifiers only)."""
    return measure(model_path, spec_path, data, batch_size).as_dict()


def measure(model_path: Path, spec_path: Path, data: str, batch_size: int = 256) -> Evaluation | GraphEvaluation:
    """The model at `model_path` on `data`: scores, report and per-sample losses (a
    v2 graph's: each output's, `evaluate_graph`)."""
    import numpy as np

    from rnnc.cli.evaluate_horizon import per_step_scores
    from rnnc.data import check_readable, load_file, output_steps
    from rnnc.metrics import output_probabilities
    from rnnc.output_sums import OutputSums
    from rnnc.runtime import Predictor

    from rnnc.cli.evaluate_disk import in_batches, on_disk, predicted_batches

    try:
        if not on_disk(data):  # a directory of .npy or .parquet files is data too
            check_readable(Path(data))
    except DataError as err:
        raise DataError(_about_data(data, str(err))) from None
    model = _spec_for(spec_path, data)
    if model.graph is not None:
        from rnnc.cli.evaluate_graph import measure_graph
        from rnnc.runtime_inputs import InputErrors

        try:
            return measure_graph(model, model_path, spec_path, data, batch_size)
        except DataError as err:  # every problem of the file, each on its line
            raise InputErrors([_about_data(data, line) for line in str(err).splitlines()]) from None
    predictor = Predictor(model_path)
    per_step = None
    if on_disk(data):  # Parquet, a .npy directory: batch by batch, never whole (evaluate_disk)
        batches = predicted_batches(model, predictor, data, batch_size)
    else:
        try:
            dataset = load_file(model, data, vocab=predictor.vocab, classes=predictor.classes)
        except DataError as err:
            raise DataError(_about_data(data, str(err))) from None
        try:
            outputs = predictor.predict(dataset.x, dataset.lengths, batch_size)
        except DataError as err:
            raise DataError(f"{_about_data(data, str(err))} (is {model_path} the model of {spec_path}?)") from None
        per_step = per_step_scores(model, output_probabilities(model.loss, outputs), dataset.y)
        batches = in_batches(dataset, outputs, batch_size)
    sums, count, names, kept = OutputSums(model.loss, model.metrics), 0, predictor.classes, []
    try:
        for batch, outputs in batches:
            mask = None
            if batch.lengths is not None and model.sequence_output:
                lengths = np.asarray(output_steps(model, batch.lengths))
                mask = np.arange(output_steps(model, batch.x.shape[1]))[None, :] < lengths[:, None]
                kept.append(lengths)
            sums.add(outputs, batch.y, mask)
            count, names = count + len(batch), names or batch.classes
    except DataError as err:
        raise DataError(_about_data(data, str(err))) from None
    scores = {"loss": sums.mean_loss(), **sums.scores()}
    return Evaluation(count, scores, sums.sample_losses(), sums.report(names), sums.ids(),
                      np.concatenate(kept) if kept else None, model.sequence_output, per_step)


def _about_data(data: str, message: str) -> str:
    """`FILE: message` (or `FILE:LINE: ...`) from the data readers as `DATA (FILE): message`:
    the user wrote DATA on the command line, so the line names the argument."""
    name = str(Path(data))
    if match := re.match(rf"{re.escape(name)}(:\d+)?: ", message):
        return f"DATA ({data}{match.group(1) or ''}): {message[match.end():]}"
    return f"DATA ({data}): {message}"


def _spec_for(spec_path: Path, data: str) -> Any:
    """The spec's IR with `data` as its only data file and no training settings: those
    may name files or monitors that evaluating has no use for. The spec's rules on that
    file (its kind, its format against `data.csv` / `data.text`) speak of `data.test`,
    a key the user never wrote: they are rewritten to name DATA."""
    from rnnc.loader import load_file
    from rnnc.spec import compile_document

    doc = load_file(spec_path)
    if isinstance(doc.data, dict):
        section = doc.data.get("data")
        kept = {k: v for k, v in section.items() if k not in ("train", "validation", "test")} if isinstance(section, dict) else {}
        doc.data["data"] = {**kept, "test": str(Path(data).resolve())}
        doc.data.pop("training", None)
    try:
        return compile_document(doc, spec_path.resolve().parent)
    except SpecError as err:
        raise SpecError([_named_data(p, data) for p in err.problems]) from None


# What the rules say about the one data file as a whole: its path (`data.test`), and
# whether its format fits data.csv (the `data` and `data.csv` keys themselves).
_ABOUT_THE_FILE = (("data", "test"), ("data",), ("data", "csv"))


def _named_data(problem: Problem, data: str) -> Problem:
    if problem.json_path[:2] != ("data", "test") and problem.json_path not in _ABOUT_THE_FILE:
        return problem
    return dataclasses.replace(problem, origin=f"DATA ({data})", line=None, column=None, path="", json_path=())


def write_per_sample(path: str, result: Evaluation) -> None:
    """One row per sample in input order: index, loss and, for a classifier, the true
    and predicted class (for sequence outputs, those of its real steps, space-separated)."""
    import numpy as np

    from rnnc.artifacts import atomic_open

    classes = result.report.classes if result.report else ()
    header = ["index", "loss", *(("true", "predicted") if result.ids else ())]
    with atomic_open(path, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for i, loss in enumerate(result.losses):
            row = [i, repr(float(loss))]
            if result.ids is not None:
                for ids in result.ids:
                    steps = ids[i] if result.lengths is None else ids[i][: result.lengths[i]]
                    row.append(" ".join(classes[int(c)] for c in np.ravel(steps)))
            writer.writerow(row)


def report_lines(report: ClassReport, steps: bool = False) -> list[str]:
    """The confusion matrix, then the per-class table in sklearn's layout."""
    names = report.classes
    counts = [[str(int(n)) for n in row] for row in report.matrix]
    label = max(len(n) for n in names)
    width = max(len(c) for c in [*names, *(c for row in counts for c in row)])
    unit = "real steps" if steps else "samples"
    lines = [f"confusion matrix ({unit}; rows: true class, columns: predicted)",
             " " * label + "".join(f"  {n:>{width}}" for n in names)]
    lines += [f"{name:>{label}}" + "".join(f"  {c:>{width}}" for c in row) for name, row in zip(names, counts)]
    first = max(label, len("weighted avg"))
    lines += ["", f"{'':>{first}}  {'precision':>9}  {'recall':>9}  {'f1-score':>9}  {'support':>9}"]
    for name, p, r, f, n in zip(names, report.precision, report.recall, report.f1, report.support):
        lines.append(f"{name:>{first}}  {p:>9.4f}  {r:>9.4f}  {f:>9.4f}  {n:>9}")
    averages = report.averages()
    total = averages["macro_avg"]["support"]
    lines += ["", f"{'accuracy':>{first}}  {'':>9}  {'':>9}  {report.accuracy:>9.4f}  {total:>9}"]
    for key, title in (("macro_avg", "macro avg"), ("weighted_avg", "weighted avg")):
        a = averages[key]
        lines.append(f"{title:>{first}}  {a['precision']:>9.4f}  {a['recall']:>9.4f}  {a['f1']:>9.4f}  {total:>9}")
    return lines
