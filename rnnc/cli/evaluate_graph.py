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
from collections.abc import Iterator
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
    from rnnc.output_sums import OutputSums
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
    sums = {out.name: OutputSums(out.loss, out.metrics, generative=out.feedback is not None) for out in model.outputs}
    try:
        for batch, outputs in _predicted(dataset, predictor, batch_size):
            for out in model.outputs:
                sums[out.name].add(outputs[out.name], batch.targets[out.name], batch.masks.get(out.name))
    except DataError as err:
        raise DataError(f"{data}: {err} (is {model_path} the model of {spec_path}?)") from None
    several = len(model.outputs) > 1
    scores: dict[str, float] = {"loss": 0.0}
    given = dataset.classes if isinstance(dataset.classes, dict) else {}
    total = np.zeros(len(dataset))
    results = []
    for out in model.outputs:
        kept = sums[out.name]
        prefix = f"{out.name}_" if several else ""
        scores["loss"] += out.loss_weight * kept.mean_loss()
        if several:
            scores[f"{prefix}loss"] = kept.mean_loss()
        scores.update({f"{prefix}{k}": v for k, v in kept.scores().items()})
        losses = kept.sample_losses()
        total += out.loss_weight * losses
        report = kept.report(predictor.outputs[out.name].classes or given.get(out.name))
        results.append(OutputResult(out.name, losses, report, kept.ids(), kept.mask(), kept.per_step))
    return GraphEvaluation(len(dataset), scores, total, results)


def _predicted(dataset: GraphDataset | RowsDataset, predictor: GraphPredictor, batch_size: int) -> Iterator[tuple[GraphDataset, dict[str, np.ndarray]]]:
    """(a batch of the data set, the model's outputs for it), `batch_size` rows at a
    time: a set left on disk (`RowsDataset`, the inputs never whole) batch by batch as
    the padded `.npz` holds its rows, one in memory run whole and handed out in the same
    batches, so that the sums add up in the same order."""
    if isinstance(dataset, RowsDataset):
        for batch in dataset.batches(batch_size):
            assert isinstance(batch, GraphDataset)
            yield batch, predictor.predict(batch.inputs, batch.lengths, batch_size)
        return
    outputs = predictor.predict(dataset.inputs, dataset.lengths, batch_size)
    for start in range(0, len(dataset), batch_size):
        rows = slice(start, start + batch_size)
        yield dataset.select(rows), {name: value[rows] for name, value in outputs.items()}


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
