"""`rnnc evaluate` of a v2 graph: each output's loss and metrics, the weighted sum, per-class reports.

The data file is read as training reads it (`rnnc.data.load_file`, a `GraphDataset`:
one array per input and output, lengths, a feedback output's shifted targets and the
steps that count; a next-token model's held-out raw text through the vocabulary its
model.onnx carries), the model runs on onnxruntime (`rnnc.runtime.GraphPredictor`) and
the numbers come from `rnnc.metrics`, as the trainer's logs do, under the trainer's
names (`rnnc.graph_rules.monitor_names`): one output's as v1's (`loss`, `accuracy`);
with several, `loss` is the sum of each output's loss times its `loss_weight`, then
`<output>_loss` and `<output>_<metric>`. A per-step classification output adds
`exact_match` (every counted step of a sequence right), one with `feedback:` also
`perplexity` (`rnnc.metrics.sequence_scores`). Each single-label classification output gets
its confusion matrix and per-class report; `--per-sample` writes each sample's loss
(the weighted sum) and each output's, true and predicted classes. No torch.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from rnnc.errors import DataError, UsageError
from rnnc.graph_data import GraphDataset
from rnnc.metrics import ClassReport
from rnnc.rows_dataset import RowsDataset

if TYPE_CHECKING:
    from pathlib import Path

    from rnnc import ir
    from rnnc.runtime import GraphPredictor


@dataclass(frozen=True)
class OutputResult:
    """One output's share of an evaluation."""

    name: str
    losses: np.ndarray  # [N]: each sample's loss of this output
    report: ClassReport | None = None  # single-label classifiers only
    ids: tuple[np.ndarray, np.ndarray] | None = None  # (true, predicted) class ids, [N] or [N, T]
    mask: np.ndarray | None = None  # [N, T]: the steps that count, per-step outputs where some do not
    steps: bool = False  # one prediction per timestep


@dataclass(frozen=True)
class GraphEvaluation:
    samples: int
    scores: dict[str, float]  # the trainer's log names
    losses: np.ndarray  # [N]: each sample's weighted sum over the outputs
    outputs: list[OutputResult] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        reports = {o.name: o.report.as_dict() for o in self.outputs if o.report is not None}
        if len(self.outputs) == 1:  # one output reads as a v1 model's
            return {"samples": self.samples, **self.scores, **next(iter(reports.values()), {})}
        return {"samples": self.samples, **self.scores, **({"reports": reports} if reports else {})}

    def reports(self) -> list[tuple[str | None, ClassReport, bool]]:
        """(title, report, counts steps) of each output that has one; no title for one output."""
        several = len(self.outputs) > 1
        return [(f"output '{o.name}'" if several else None, o.report, o.steps) for o in self.outputs if o.report is not None]


def measure_graph(model: ir.Model, model_path: Path, spec_path: Path, data: str, batch_size: int) -> GraphEvaluation:
    """The graph at `model_path` (exported from `model`, the spec's IR) on `data`; a
    `DataError` of the data reads `FILE: ...` (the caller names the argument)."""
    from rnnc.data import load_file
    from rnnc.metrics import (class_ids, compute_metrics, loss_value, output_probabilities, sample_losses, sequence_scores,
                              single_label)
    from rnnc.runtime import GraphPredictor
    from rnnc.text import METADATA_KEY, Vocab

    predictor = GraphPredictor(model_path)
    names = ([i.name for i in model.inputs], [o.name for o in model.outputs])
    if names != (list(predictor.inputs), list(predictor.outputs)):
        raise UsageError(f"{spec_path}: not the spec of {model_path}: it describes inputs {', '.join(names[0])} and outputs "
                         f"{', '.join(names[1])}, the model inputs {', '.join(predictor.inputs)} and outputs "
                         f"{', '.join(predictor.outputs)}; pass its spec with --spec")
    stored = predictor.metadata.get(METADATA_KEY)  # a next-token model of raw text: held-out text in its ids
    vocab = None if stored is None else Vocab.from_json(stored, str(model_path))
    dataset = load_file(model, data, vocab=vocab)
    try:
        if isinstance(dataset, RowsDataset):  # a .npy directory: batch by batch, the inputs never whole
            dataset, outputs = _predict_rows(dataset, predictor, batch_size)
        else:
            outputs = predictor.predict(dataset.inputs, dataset.lengths, batch_size)  # type: ignore[union-attr]
    except DataError as err:
        raise DataError(f"{data}: {err} (is {model_path} the model of {spec_path}?)") from None
    several = len(model.outputs) > 1
    scores: dict[str, float] = {"loss": 0.0}
    total = np.zeros(len(dataset))
    results = []
    for out in model.outputs:
        y, target, mask = outputs[out.name], dataset.targets[out.name], dataset.masks.get(out.name)
        loss = loss_value(out.loss, y, target, mask)
        probs = output_probabilities(out.loss, y)
        metrics = compute_metrics(out.metrics, out.loss, probs, target, mask)
        metrics.update(sequence_scores(out.loss, y, target, mask, generative=out.feedback is not None))
        prefix = f"{out.name}_" if several else ""
        scores["loss"] += out.loss_weight * loss
        if several:
            scores[f"{prefix}loss"] = loss
        scores.update({f"{prefix}{k}": v for k, v in metrics.items()})
        losses = sample_losses(out.loss, y, target, mask)
        total += out.loss_weight * losses
        result = OutputResult(out.name, losses, mask=mask, steps=y.ndim == 3)
        if single_label(out.loss, probs.shape[-1]):
            true, predicted = class_ids(out.loss, probs, target)
            count = 2 if out.loss.type == "binary_crossentropy" else probs.shape[-1]
            given = predictor.outputs[out.name].classes or dataset.classes.get(out.name)
            classes = tuple(given) if given and len(given) == count else tuple(str(i) for i in range(count))
            counted = (true, predicted) if mask is None else (true[mask], predicted[mask])
            result = OutputResult(out.name, losses, ClassReport.of(*counted, classes), (true, predicted), mask, y.ndim == 3)
        results.append(result)
    return GraphEvaluation(len(dataset), scores, total, results)


def _predict_rows(rows: RowsDataset, predictor: GraphPredictor, batch_size: int) -> tuple[GraphDataset, dict[str, np.ndarray]]:
    """(the data set, its inputs zero-stride stand-ins; the outputs) of a data set left
    on disk, `batch_size` rows at a time: each batch is the rows of the padded `.npz`
    (`RowsDataset.batch`), run as `predict` runs them, so the scores are the `.npz`'s."""
    outputs: dict[str, list[np.ndarray]] = {}
    kept: dict[str, dict[str, list[np.ndarray]]] = {"lengths": {}, "targets": {}, "masks": {}}
    first = None
    for batch in rows.batches(batch_size):
        assert isinstance(batch, GraphDataset)
        first = first or batch
        for name, value in predictor.predict(batch.inputs, batch.lengths, batch_size).items():
            outputs.setdefault(name, []).append(value)
        for part, arrays in kept.items():
            for name, value in getattr(batch, part).items():
                arrays.setdefault(name, []).append(value)
    assert first is not None  # rows_dataset refuses a source of no rows
    whole = {part: {k: np.concatenate(v) for k, v in arrays.items()} for part, arrays in kept.items()}
    inputs = {k: np.broadcast_to(np.zeros((), v.dtype), (len(rows), *v.shape[1:])) for k, v in first.inputs.items()}
    classes = rows.classes if isinstance(rows.classes, dict) else {}
    dataset = GraphDataset(inputs, whole["lengths"], whole["targets"], whole["masks"], rows.origin, classes)
    return dataset, {k: np.concatenate(v) for k, v in outputs.items()}


def write_graph_per_sample(path: str, result: GraphEvaluation) -> None:
    """One row per sample in input order: index, loss (the weighted sum) and, with several
    outputs, each one's loss; for a classifier output, the true and predicted classes (of
    its counted steps, space-separated, for a per-step output). One output: v1's columns."""
    from rnnc.artifacts import atomic_open

    several = len(result.outputs) > 1
    header = ["index", "loss"]
    for out in result.outputs:
        prefix = f"{out.name}_" if several else ""
        header += [*((f"{prefix}loss",) if several else ()), *((f"{prefix}true", f"{prefix}predicted") if out.ids else ())]
    with atomic_open(path, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for i, loss in enumerate(result.losses):
            row: list[object] = [i, repr(float(loss))]
            for out in result.outputs:
                if several:
                    row.append(repr(float(out.losses[i])))
                if out.ids is not None and out.report is not None:
                    for ids in out.ids:
                        kept = ids[i] if out.mask is None else ids[i][out.mask[i]]
                        row.append(" ".join(out.report.classes[int(c)] for c in np.ravel(kept)))
            writer.writerow(row)
