"""Training a graph (spec version 2): several inputs, several outputs, one loss.

`GraphTrainer` is the `Trainer` (epochs, schedule, early stopping, checkpoints, resume)
with its step written for a `GraphModule`: the data is a `GraphDeviceData` of tensors
keyed by the spec's names, tensorised once and permuted once per epoch as in the v1
loop, so each batch is a slice of every tensor. Data left on disk (a `.npy` directory,
Parquet: a `RowsDataset`) is a `stream.StreamData` instead, permuted by the same order
and gathered a batch at a time on a prefetch thread, each batch the rows that slicing
the permuted data in memory gives, so the weights are the same to the bit; the
normalization statistics come from it in chunks the same way (`adapt_normalization`).
The loss is each output's objective
(v1's `make_objective`, on its real steps where a mask says which count) scaled by its
`loss_weight` and summed. Logs follow `rnnc.graph_rules.monitor_names`: with one
output v1's names, with several `loss` (the sum), `<output>_loss` and
`<output>_<metric>`, and their `val_` twins. Normalization layers are adapted to the
training set before the first epoch (`adapt`), never again on resume: their
statistics are parameters without gradients, saved in the checkpoint. With
`training.tbptt` every sequence input and every (per-step) output is cut at the same
steps, as a chain's batches are (`tbptt`). Under `--nproc` the same loop runs on each
rank's shard (`graph_distributed`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from rnnc import ir
from rnnc.errors import DataError, TrainingError
from rnnc.graph_data import GraphDataset, adapt_normalization
from rnnc.rows_dataset import RowsDataset, cut_targets

from .batching import batch_longest, cuts_to_longest, epoch_order
from .cpu import at_most
from .losses import Objective, make_objective
from .device_data import at_width
from .epoch_metrics import EpochMetrics
from .recurrent import State
from .tbptt import ChunkResult, Chunks, chunk_lengths, train_in_chunks
from .stream import StreamData
from .trainer import PROGRESS_UPDATES, Trainer

Outputs = dict[str, Tensor]


@dataclass(frozen=True)
class GraphDeviceData:
    """A `GraphDataset` as tensors on the training device, each dict keyed as its arrays."""

    inputs: dict[str, Tensor]
    lengths: dict[str, Tensor]
    targets: dict[str, Tensor]
    masks: dict[str, Tensor]  # the counted steps of per-step outputs that have some uncounted

    @property
    def size(self) -> int:
        return int(next(iter(self.inputs.values())).shape[0])

    def take(self, order: Tensor) -> GraphDeviceData:
        """The samples in `order` (a permutation), copied."""
        pick = lambda tensors: {k: t[order] for k, t in tensors.items()}  # noqa: E731
        return GraphDeviceData(pick(self.inputs), pick(self.lengths), pick(self.targets), pick(self.masks))

    def rows(self, rows: slice) -> GraphDeviceData:
        """A batch: views of every tensor's `rows`."""
        pick = lambda tensors: {k: t[rows] for k, t in tensors.items()}  # noqa: E731
        return GraphDeviceData(pick(self.inputs), pick(self.lengths), pick(self.targets), pick(self.masks))

    def steps(self, begin: int, end: int, sequences: set[str]) -> GraphDeviceData:
        """Steps `begin:end` of the `sequences` inputs and of every output (all per step,
        as `training.tbptt` requires), each sequence's lengths counted within them."""
        inputs = {k: t[:, begin:end] if k in sequences else t for k, t in self.inputs.items()}
        lengths = {k: chunk_lengths(t, begin, end) for k, t in self.lengths.items()}
        pick = lambda tensors: {k: t[:, begin:end] for k, t in tensors.items()}  # noqa: E731
        return GraphDeviceData(inputs, lengths, pick(self.targets), pick(self.masks))  # type: ignore[arg-type]

    def cut(self, widths: dict[str, int], follows: dict[str, str]) -> GraphDeviceData:
        """Those inputs at `widths[name]` steps (`at_width`), and the targets and masks of
        the per-step outputs that `follows` them (`rnnc.rows_dataset.cut_targets`): a
        batch cut to its longest sequences."""
        inputs = {k: at_width(t, widths[k]) if k in widths else t for k, t in self.inputs.items()}
        steps = lambda tensors: {k: at_width(t, widths[follows[k]]) if follows.get(k) in widths else t  # noqa: E731
                                 for k, t in tensors.items()}
        return GraphDeviceData(inputs, self.lengths, steps(self.targets), steps(self.masks))

    @classmethod
    def of(cls, data: GraphDataset, device: torch.device) -> GraphDeviceData:
        put = lambda arrays: {k: torch.from_numpy(np.ascontiguousarray(a)).to(device) for k, a in arrays.items()}  # noqa: E731
        return cls(put(data.inputs), put(data.lengths), put(data.targets), put(data.masks))


def _activated(objectives: dict[str, Objective], activations: dict[str, str | None]) -> bool:
    """Whether the module runs on logits: when every output that ends in sigmoid or
    softmax has a loss fused with it; otherwise every output keeps its probabilities (a
    logit the loss did not want could not be activated exactly past trailing dropout)."""
    return all(objectives[name].fused for name, act in activations.items() if act is not None)


Data = GraphDeviceData | StreamData


class GraphTrainer(Trainer):
    """One training run of a graph; see the module docstring."""

    def __init__(self, model: ir.Model, device: torch.device | str = "cpu"):
        super().__init__(model, device)
        self.outputs = model.outputs
        activations = self.module.final_activations  # type: ignore[union-attr]
        objectives = {out.name: make_objective(out.loss, activations[out.name]) for out in self.outputs}
        self.logits = _activated(objectives, activations)
        if not self.logits:
            objectives = {out.name: make_objective(out.loss, activations[out.name], fuse=False) for out in self.outputs}
        self.objectives = objectives
        self.shards = 1  # the sharded step is the v1 chain's
        self._sequences = {inp.name for inp in model.inputs if inp.sequence}  # what training.tbptt cuts
        self._follows = cut_targets(model)  # per-step outputs, cut with the input whose steps they have

    def _chunks(self, data: Data) -> Chunks | None:
        """Where `training.tbptt` cuts this epoch's batches, or None when each is one chunk."""
        size = self.settings.tbptt
        if size is None:
            return None
        streamed = isinstance(data, StreamData)
        steps = {name: data.width(name) if streamed else int(data.inputs[name].shape[1])  # type: ignore[union-attr]
                 for name in sorted(self._sequences)}
        if len(set(steps.values())) > 1:
            raise DataError("training.tbptt cuts every sequence input at the same steps, but they have "
                            + ", ".join(f"{name} {count}" for name, count in steps.items()) + " steps: pad them to one length")
        count = next(iter(steps.values()), 0)
        if size >= count:
            return None
        named = data.named_lengths if isinstance(data, StreamData) else data.lengths
        lengths = [named[name] for name in sorted(self._sequences) if name in named]
        longest = torch.stack(lengths).amax(0) if len(lengths) == len(steps) else None  # an input without: every step real
        return Chunks(size, count, longest, self.settings.batch_size, self.agree_longest)

    def _widths(self, data: Data, batch: int) -> dict[str, list[int]] | None:
        """Each sequence input's longest steps per batch of `data`, by name (one read of
        its lengths per pass; with `training.tbptt` the longest of them for all, as
        `rnnc.rows_dataset.common_width`), or None where cutting could change a result
        (`cuts_to_longest`). Batches from disk come cut to their own longest already, so
        there this changes nothing in one process; under `--nproc` it pads each rank's
        to the widths the ranks agree on."""
        if not cuts_to_longest(self.model):
            return None
        named = data.named_lengths if isinstance(data, StreamData) else data.lengths
        found = {name: batch_longest(lengths, batch, self.agree_longest) for name, lengths in sorted(named.items()) if name in self._sequences}
        found = {name: cuts for name, cuts in found.items() if cuts is not None}
        if self.settings.tbptt is None or not found:
            return found or None
        if len(found) < len(self._sequences):  # an input without lengths runs its every step
            return None
        common = [max(each) for each in zip(*found.values())]  # tbptt cuts them all at the same steps
        return {name: common for name in found}

    def _objective(self) -> Objective:
        first = self.model.outputs[0]
        return make_objective(first.loss, self.module.final_activations[first.name])  # type: ignore[union-attr]

    def on_device(self, data: GraphDataset | RowsDataset) -> Data:  # type: ignore[override]
        """`data` as tensors on the device; data left on disk as a `StreamData`."""
        if isinstance(data, RowsDataset):
            return StreamData.of(self.model, data, self.device, partial(GraphDeviceData.of, device=self.device))
        return GraphDeviceData.of(data, self.device)

    def adapt(self, train: GraphDataset | RowsDataset) -> None:  # type: ignore[override]
        """Normalization's mean and variance from the training set (`adapt_normalization`),
        a chunk of rows at a time from disk."""
        if isinstance(train, RowsDataset):
            shapes = {name: column.shape for name, column in train.rows.columns.items()}
            stats = adapt_normalization(self.model, train, shapes)
        else:
            stats = adapt_normalization(self.model, train)
        params = self.module.ir_parameters()  # type: ignore[operator]
        with torch.no_grad():
            for name, value in stats.items():
                params[name].copy_(torch.from_numpy(value))

    # --- the step --------------------------------------------------------------------

    def _losses(self, outputs: Outputs, batch: GraphDeviceData) -> tuple[Tensor, list[Tensor]]:
        """The weighted sum of the outputs' losses, and each output's loss."""
        parts = []
        for out in self.outputs:
            objective, mask = self.objectives[out.name], batch.masks.get(out.name)
            fast = objective.fast() if mask is None else None
            output, target = outputs[out.name], batch.targets[out.name]
            parts.append(fast(output, target) if fast is not None else objective(output, target, mask))
        total = parts[0] * self.outputs[0].loss_weight
        for out, part in zip(self.outputs[1:], parts[1:]):
            total = total + part * out.loss_weight
        return total, parts

    def train_epoch(self, epoch: int, data: Data, lr: float, progress: bool = False) -> dict[str, float]:  # type: ignore[override]
        with at_most(self.threads):
            return self._graph_epoch(epoch, data, lr, progress)

    def _graph_epoch(self, epoch: int, data: Data, lr: float, progress: bool) -> dict[str, float]:
        module, optimizer, amp = self.module, self.optimizer, self.precision
        for group in optimizer.param_groups:
            group["lr"] = lr
        module.train()
        n, batch = data.size, self.settings.batch_size
        if self.settings.shuffle:  # the chain's order (a graph does not bucket)
            data = data.take(epoch_order(n, self.settings.seed, epoch).to(self.device))
        clip = self.settings.gradient_clip
        params = [p for p in module.parameters() if p.requires_grad]
        metrics = self._output_metrics()
        batches = data.batches(batch) if isinstance(data, StreamData) else None
        totals: list[Tensor] = []
        parts: list[Tensor] = []
        steps = -(-n // batch)
        every = max(1, steps // PROGRESS_UPDATES)
        bar = tqdm(total=steps, desc=f"epoch {epoch}/{self.settings.epochs}", unit="step", leave=False, disable=not progress, dynamic_ncols=True)
        def update(loss: Tensor) -> None:
            if amp.plain:
                if clip is not None:
                    torch.nn.utils.clip_grad_norm_(params, clip)
                optimizer.step()
            else:
                amp.step(loss, optimizer, None if clip is None else lambda: torch.nn.utils.clip_grad_norm_(params, clip))

        def chunk(rows: GraphDeviceData, begin: int, end: int, state: dict[str, State]) -> ChunkResult:
            part = rows.steps(begin, end, self._sequences)
            optimizer.zero_grad(set_to_none=True)
            with amp.autocast():
                outputs, state = module(part.inputs, part.lengths, logits=self.logits, trusted=True, state=state)
                loss, each = self._losses(outputs, part)
            if amp.plain:
                loss.backward()
            real = [self._real_steps(self.objectives[out.name], part.masks[out.name]) if out.name in part.masks else float(end - begin)
                    for out in self.outputs]
            return outputs, loss, each, real, state

        chunks = self._chunks(data)
        widths = self._widths(data, batch)
        for step, start in enumerate(range(0, n, batch), 1):
            rows = next(batches) if batches is not None else data.rows(slice(start, min(n, start + batch)))  # type: ignore[union-attr]
            if widths is not None:  # each sequence only to its longest in the batch (batching.py)
                rows = rows.cut({name: cuts[step - 1] for name, cuts in widths.items()}, self._follows)
            spans = chunks.spans(start, min(n, start + batch)) if chunks is not None else ()
            if len(spans) > 1:  # training.tbptt: a step per chunk, the state carried across
                width = max(int(t.shape[1]) for name, t in rows.inputs.items() if name in self._sequences)
                outputs, each = train_in_chunks(spans, partial(chunk, rows), update, width)
                loss = sum((part * out.loss_weight for part, out in zip(each[1:], self.outputs[1:])),
                           each[0] * self.outputs[0].loss_weight)
            else:
                optimizer.zero_grad(set_to_none=True)
                with amp.autocast():  # a no-op for fp32
                    outputs = module(rows.inputs, rows.lengths, logits=self.logits, trusted=True)
                    loss, each = self._losses(outputs, rows)
                if amp.plain:
                    loss.backward()
                update(loss)
            totals.append(loss.detach())
            parts.append(torch.stack(each).detach().float())
            for name, counted in metrics.items():
                counted.add(outputs[name], rows.targets[name], rows.masks.get(name))
            if progress and step % every == 0:
                self._progress(bar, epoch, totals, every)
        bar.update(steps - bar.n)
        bar.close()
        sizes = torch.full((steps,), float(batch), device=self.device)
        sizes[-1] = n - batch * (steps - 1)
        mean = float((torch.stack(totals).float() * sizes).sum() / n)
        if not math.isfinite(mean):
            raise TrainingError(f"epoch {epoch}: loss is {mean}; training diverged")
        each_mean = ((torch.stack(parts) * sizes[:, None]).sum(0) / n).tolist()
        return self._logs(mean, each_mean, metrics)

    def _output_metrics(self) -> dict[str, EpochMetrics]:
        """What counts each output's metrics over a pass, by output name (those with metrics)."""
        return {out.name: self._metrics_of(out) for out in self.outputs if out.metrics}

    def _metrics_of(self, out: ir.Output) -> EpochMetrics:
        return EpochMetrics(out.metrics, out.loss, self.objectives[out.name].probabilities)

    def _logs(self, total: float, each: list[float], metrics: dict[str, EpochMetrics]) -> dict[str, float]:
        """The epoch's logs under `monitor_names`: one output's as v1's, several by name."""
        logs = {"loss": total}
        several = len(self.outputs) > 1
        for out, value in zip(self.outputs, each):
            prefix = f"{out.name}_" if several else ""
            if several:
                logs[f"{prefix}loss"] = value
            if out.name in metrics:
                logs.update({f"{prefix}{k}": v for k, v in metrics[out.name].values().items()})
        return logs

    def evaluate(self, data: Data) -> dict[str, float]:  # type: ignore[override]
        with at_most(self.threads):
            return self._evaluate_graph(data)

    @torch.inference_mode()
    def _evaluate_graph(self, data: Data) -> dict[str, float]:
        self.module.eval()
        batch = self.settings.batch_size
        total = torch.zeros((), device=self.device, dtype=torch.float64)
        each = torch.zeros(len(self.outputs), device=self.device, dtype=torch.float64)
        metrics = self._output_metrics()
        parts_in = data.batches(batch) if isinstance(data, StreamData) else (data.rows(slice(s, s + batch)) for s in range(0, data.size, batch))
        widths = self._widths(data, batch)
        for i, rows in enumerate(parts_in):
            if widths is not None:  # as in training: each sequence to its longest in the batch
                rows = rows.cut({name: cuts[i] for name, cuts in widths.items()}, self._follows)
            size = next(iter(rows.inputs.values())).shape[0]
            with self.precision.autocast():
                outputs = self.module(rows.inputs, rows.lengths, logits=self.logits, trusted=True)
                loss, parts = self._losses(outputs, rows)
            total += loss.double() * size
            each += torch.stack(parts).double() * size
            for name, counted in metrics.items():
                counted.add(outputs[name], rows.targets[name], rows.masks.get(name))
        return self._logs(float(total / data.size), (each / data.size).tolist(), metrics)
