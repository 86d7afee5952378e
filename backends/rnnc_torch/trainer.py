"""The training loop: epochs of minibatch steps on data already on the device.

`Trainer` owns the module, objective, optimizer, schedule and early stopping of one run
and runs whole epochs. The inner loop is kept lean, since it is what the throughput
benchmark holds against a hand-written PyTorch loop: the data is tensorised once and
each batch gathers its rows of the epoch's order (no copy of the whole data per
epoch; data left on disk, `stream.StreamData`, is gathered the same way on a prefetch
thread); the loss stays on the device and is read once per epoch (and every few
steps for the progress bar), and the metrics' counts are folded in every few MiB of
outputs (`epoch_metrics`), so no epoch's outputs are kept. Each epoch's shuffle comes
from a generator seeded by (seed, epoch), and the global RNG (dropout) is part of the
state, so a run resumed from a checkpoint continues bit-identically. Padded steps of
sequence outputs are masked out of the loss and the metrics; a batch of variable length
runs only to its longest sequence (a per-step output's targets cut with it), and `training.bucket_by_length` groups similar
lengths (`batching`). With `training.tbptt`
a batch longer than K steps trains in chunks, a step per chunk (`tbptt`). A graph (spec version 2)
trains in `graph_trainer.GraphTrainer`, this loop with its own step (named inputs,
several outputs) and the `adapt` hook, which sets normalization from the data.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from rnnc import ir
from rnnc.dataset import Dataset
from rnnc.errors import TrainingError, UsageError
from rnnc.graph_rules import monitor_names
from rnnc.rows_dataset import RowsDataset

from .batching import batch_longest, cuts_to_longest, epoch_order, epoch_seed  # noqa: F401  (epoch_seed: imported from here too)
from .cpu import ShardedStep, at_most, check_settings, shard_count, training_threads
from .device_data import DeviceData, at_width
from .losses import Objective, make_objective
from .epoch_metrics import EpochMetrics
from .model import build_module
from .optim import EarlyStopping, Schedule, make_optimizer
from .precision import Precision
from .recurrent import State
from .stream import StreamData
from .tbptt import ChunkResult, Chunks, chunk_lengths, train_in_chunks

EpochHook = Callable[["Trainer", dict[str, Any]], None]
PROGRESS_UPDATES = 20  # progress-bar refreshes per epoch, each reading the loss once
PROGRESS_LAG = 2  # steps between a loss and its display (no waiting on the device)
GATHER_ROWS, GATHER_BYTES = 4096, 1 << 20  # a shuffled epoch's rows gathered at most so many at once


def _gathered(data: DeviceData, order: Tensor, batch: int) -> Iterator[DeviceData]:
    """The batches of `order`'s rows, gathered whole batches at a time, up to
    `GATHER_BYTES` of input (at least one batch): a gather per batch costs a small
    model as much as a twentieth of its step."""
    row = max(1, data.x[0].numel() * data.x.element_size()) if data.size else 1
    span = max(1, min(GATHER_ROWS, GATHER_BYTES // row) // batch) * batch
    for first in range(0, data.size, span):
        chunk = data.take(order[first : first + span])
        for start in range(0, chunk.size, batch):
            yield chunk.rows(slice(start, start + batch))


def _steps(data: DeviceData | StreamData) -> int:
    return data.steps if isinstance(data, StreamData) else int(data.x.shape[1])


def _masked(data: DeviceData | StreamData) -> bool:
    return data.masked if isinstance(data, StreamData) else data.mask is not None


class Trainer:
    """One training run of `model` on `device`; `epoch` counts the completed epochs."""

    def __init__(self, model: ir.Model, device: torch.device | str = "cpu"):
        self.model = model
        self.settings = model.training
        self.device = torch.device(device)
        torch.manual_seed(self.settings.seed)  # the initial weights, then dropout
        self.module = build_module(model).to(self.device)
        self.objective = self._objective()
        self.precision = Precision(self.settings.precision, self.device)
        check_settings()  # RNNC_GEMM, RNNC_LOOP
        self.threads = training_threads(model, self.device)  # 1 for small steps (cpu/policy.py)
        self.shards = shard_count(model, self.module, self.device)  # threads each batch is split across (cpu/policy.py)
        # normalization's statistics are parameters set from the data, never stepped
        self.optimizer = make_optimizer(model.optimizer, [p for p in self.module.parameters() if p.requires_grad])
        self.schedule = Schedule(self.settings.lr_schedule, model.optimizer.lr, self.settings.epochs)
        stop = self.settings.early_stopping
        self.stopper = EarlyStopping(stop) if stop is not None else None
        self.history: list[dict[str, Any]] = []
        self.epoch = 0
        self.stop_reason = ""  # set once training has ended early
        self.restored = ""  # set when the final weights are an earlier epoch's

    def _objective(self) -> Objective:
        """The loss of the model's one output (a graph's trainer has one per output)."""
        return make_objective(self.model.loss, self.module.final_activation)

    def on_device(self, data: Dataset) -> DeviceData:
        """`data` as the tensors `train_epoch` and `evaluate` take; data left on disk
        (a `RowsDataset`) as a `StreamData`, read a batch at a time."""
        if isinstance(data, RowsDataset):
            return StreamData.of(self.model, data, self.device, partial(DeviceData.of, self.model, device=self.device))  # type: ignore[return-value]
        return DeviceData.of(self.model, data, self.device)

    def adapt(self, train: Dataset) -> None:
        """Set what the model learns from the data before training rather than by
        gradients (a graph's normalization statistics); a chain has nothing of the kind."""

    # --- epochs ---------------------------------------------------------------------

    def run(
        self, train: Dataset, validation: Dataset | None = None, *, progress: bool = True, hooks: Sequence[EpochHook] = ()
    ) -> None:
        """Train up to `training.epochs`, calling each hook after each epoch; raises
        `TrainingError` when the loss turns NaN or inf (the module is then unusable)."""
        self._check_monitors(validation is not None)
        if self.epoch == 0:  # a fresh run: a resumed one has them in its checkpoint
            self.adapt(train)
        train_data = self.on_device(train)
        val_data = self.on_device(validation) if validation is not None else None
        epochs = self.settings.epochs
        while self.epoch < epochs and not self.stop_reason:
            epoch = self.epoch + 1
            started = time.perf_counter()
            lr = self.schedule.lr_for(epoch)
            logs: dict[str, Any] = {"epoch": epoch}
            logs.update(self.train_epoch(epoch, train_data, lr, progress))
            if val_data is not None:
                logs.update({f"val_{k}": v for k, v in self.evaluate(val_data).items()})
                if not math.isfinite(logs["val_loss"]):
                    raise TrainingError(f"epoch {epoch}: validation loss is {logs['val_loss']}; training diverged")
            logs["lr"] = lr
            logs["time"] = round(time.perf_counter() - started, 3)
            self.schedule.end_epoch(logs)
            if self.stopper is not None and self.stopper.end_epoch(epoch, logs, self.module):
                monitor = self.stopper.spec.monitor
                self.stop_reason = (
                    f"early stopping: {monitor} has not improved for {self.stopper.wait} epochs "
                    f"(best {self.stopper.best:.4g} at epoch {self.stopper.best_epoch})"
                )
            self.history.append(logs)
            self.epoch = epoch
            for hook in hooks:
                hook(self, logs)
        self.restore_best()

    def restore_best(self) -> None:
        """With `restore_best`, put the best epoch's parameters back (end of training)."""
        if self.stopper is not None and self.stopper.spec.restore_best and self.stopper.best_state is not None:
            self.module.load_state_dict(self.stopper.best_state)
            if self.stopper.best_epoch != self.epoch:
                self.restored = (
                    f"restored the weights of epoch {self.stopper.best_epoch} "
                    f"(best {self.stopper.spec.monitor} {self.stopper.best:.4g})"
                )

    def _check_monitors(self, has_validation: bool) -> None:
        names = monitor_names(self.model.outputs)
        if has_validation:
            names += [f"val_{n}" for n in names]
        watched = [self.stopper.spec.monitor] if self.stopper is not None else []
        if self.schedule.spec is not None and self.schedule.spec.type == "plateau":
            watched.append(self.schedule.spec.monitor)
        for monitor in watched:
            if monitor not in names:
                raise UsageError(f"cannot monitor '{monitor}' (no validation data?); available: {', '.join(names)}")

    def train_epoch(self, epoch: int, data: DeviceData, lr: float, progress: bool = False) -> dict[str, float]:
        """One pass over `data` in this epoch's order; the mean loss and the metrics."""
        sharded = self.shards > 1 and not _masked(data) and not self._chunked(data)
        with at_most(1 if sharded else self.threads):
            return self._train_epoch(epoch, data, lr, progress, ShardedStep(self.module, self.shards) if sharded else None)

    def agree_longest(self, longest: Tensor) -> Tensor:
        """Each batch's longest sequence, as every process sees it (one process: its own)."""
        return longest

    def _real_steps(self, objective: Objective, mask: Tensor) -> Tensor:
        """The real steps `objective`'s last masked mean (over `mask`) divided by: a
        chunk's weight in the batch's logged loss (`tbptt`); all processes' together
        in a data-parallel run."""
        return mask.sum()

    def _chunked(self, data: DeviceData) -> bool:
        """Whether `training.tbptt` cuts this data's sequences into several chunks."""
        return self.settings.tbptt is not None and self.settings.tbptt < _steps(data)

    def _train_epoch(self, epoch: int, data: DeviceData, lr: float, progress: bool, shards: ShardedStep | None) -> dict[str, float]:
        module, optimizer = self.module, self.optimizer
        for group in optimizer.param_groups:
            group["lr"] = lr
        module.train()
        n, batch = data.size, self.settings.batch_size
        order = None
        if self.settings.shuffle:
            # Each batch gathers its rows of this order: no copy of the whole data per epoch;
            # with bucket_by_length, batches of similar lengths (batching.py).
            bucket = batch if self.settings.bucket_by_length else None
            order = epoch_order(n, self.settings.seed, epoch, data.lengths if bucket else None, bucket).to(self.device)
            if isinstance(data, StreamData):
                data, order = data.take(order), None
        objective = self.objective
        fast = objective.fast() if not _masked(data) else None
        logits = objective.fused
        clip = self.settings.gradient_clip
        params = [p for p in module.parameters() if p.requires_grad]
        metrics = self._epoch_metrics() if self.model.metrics else None
        losses: list[Tensor] = []
        steps = -(-n // batch)
        every = max(1, steps // PROGRESS_UPDATES)
        bar = tqdm(total=steps, desc=f"epoch {epoch}/{self.settings.epochs}", unit="step", leave=False, disable=not progress, dynamic_ncols=True)
        streamed = isinstance(data, StreamData) or order is not None  # then each batch is gathered, its rows from 0
        batches: Iterator[DeviceData] | None = None
        if isinstance(data, StreamData):
            batches = data.batches(batch)
        elif order is not None:
            batches = _gathered(data, order, batch)
        in_order = data.lengths if order is None or data.lengths is None else data.lengths[order]
        x, y, all_lengths, mask = (None, None, in_order, None) if streamed else (data.x, data.y, data.lengths, data.mask)
        steps_in = _steps(data)
        amp = self.precision
        cuts = batch_longest(in_order, batch, self.agree_longest) if cuts_to_longest(self.model) else None
        per_step = self.model.sequence_output  # a cut batch's targets and mask are cut with it
        whole_x, whole_y, whole_mask = x, y, mask

        def forward(rows: slice) -> tuple[Tensor, Tensor]:
            output = module(x[rows], None if all_lengths is None else all_lengths[rows], logits=logits, trusted=True)
            loss = fast(output, y[rows]) if fast is not None else objective(output, y[rows], None if mask is None else mask[rows])
            return output, loss

        def update(loss: Tensor) -> None:
            if amp.plain:
                if clip is not None:
                    torch.nn.utils.clip_grad_norm_(params, clip)
                optimizer.step()
            else:  # fp16's gradient scaler: backward, clipping and the step go through it
                amp.step(loss, optimizer, None if clip is None else lambda: torch.nn.utils.clip_grad_norm_(params, clip))

        def chunk(rows: slice, begin: int, end: int, state: dict[int, State]) -> ChunkResult:
            optimizer.zero_grad(set_to_none=True)
            lengths = chunk_lengths(None if all_lengths is None else all_lengths[rows], begin, end)
            counted = None if mask is None else mask[rows, begin:end]
            with amp.autocast():
                output, state = module(x[rows, begin:end], lengths, logits=logits, trusted=True, state=state)
                target = y[rows, begin:end]
                loss = fast(output, target) if fast is not None else objective(output, target, counted)
            if amp.plain:
                loss.backward()
            return {"y": output}, loss, (loss,), (float(end - begin) if counted is None else self._real_steps(objective, counted),), state

        chunks = Chunks(self.settings.tbptt, steps_in, all_lengths, batch, self.agree_longest) if self._chunked(data) else None  # type: ignore[arg-type]
        for step, start in enumerate(range(0, n, batch), 1):
            stop = min(n, start + batch)
            base = 0
            if batches is not None:  # this batch alone, gathered on the prefetch thread
                part = next(batches)
                x, y, all_lengths, mask, base = part.x, part.y, part.lengths, part.mask, start
            if cuts is not None:  # only the batch's longest sequence of steps (batching.py)
                width = cuts[step - 1]
                if batches is None:
                    x, y, mask = whole_x, whole_y, whole_mask
                x = at_width(x, width)
                if per_step:
                    y, mask = at_width(y, width), None if mask is None else at_width(mask, width)
            spans = chunks.spans(start, stop) if chunks is not None else ()
            if len(spans) > 1:  # training.tbptt: a step per chunk, the state carried across
                chunked, (loss,) = train_in_chunks(spans, partial(chunk, slice(start - base, stop - base)), update, int(x.shape[1]))
                output = chunked["y"]
            else:
                if shards is not None:  # forward and backward on the shards' threads (fp32, bf16); .grad is the batch's
                    output, loss = shards(amp.in_autocast(forward), start - base, stop - base)
                else:
                    optimizer.zero_grad(set_to_none=True)
                    with amp.autocast():  # a no-op for fp32
                        output, loss = forward(slice(start - base, stop - base))
                    if amp.plain:
                        loss.backward()
                update(loss)
            losses.append(loss.detach())
            if metrics is not None:  # folded into counts every few MiB of outputs (epoch_metrics.py)
                rows = slice(start - base, stop - base)
                metrics.add(output, y[rows], None if mask is None else mask[rows])
            if progress and step % every == 0:
                self._progress(bar, epoch, losses, every)
        bar.update(steps - bar.n)
        bar.close()
        sizes = torch.full((steps,), float(batch), device=self.device)
        sizes[-1] = n - batch * (steps - 1)
        mean = float((torch.stack(losses) * sizes).sum() / n)
        if not math.isfinite(mean):
            raise TrainingError(f"epoch {epoch}: loss is {mean}; training diverged")
        logs = {"loss": mean}
        if metrics is not None:
            logs.update(metrics.values())
        return logs

    def _progress(self, bar: tqdm, epoch: int, losses: list[Tensor], every: int) -> None:
        """Advance the bar and show the mean loss of a window a few steps old: reading
        a value the device finished long ago does not stall its queue."""
        bar.update(len(losses) - bar.n)
        end = len(losses) - PROGRESS_LAG
        if end <= 0:
            return
        recent = float(torch.stack(losses[max(0, end - every) : end]).mean())
        if not math.isfinite(recent):  # stop early rather than at the epoch's end
            bar.close()
            raise TrainingError(f"epoch {epoch}, step {end}: loss is {recent}; training diverged")
        bar.set_postfix_str(f"loss {recent:.4f}", refresh=False)

    def evaluate(self, data: DeviceData) -> dict[str, float]:
        """The mean loss and the metrics on `data`, in eval mode (no dropout)."""
        with at_most(self.threads):
            return self._evaluate(data)

    @torch.inference_mode()
    def _evaluate(self, data: DeviceData) -> dict[str, float]:
        self.module.eval()
        batch = self.settings.batch_size
        total = torch.zeros((), device=self.device, dtype=torch.float64)
        metrics = self._epoch_metrics() if self.model.metrics else None
        parts = data.batches(batch) if isinstance(data, StreamData) else (data.rows(slice(s, s + batch)) for s in range(0, data.size, batch))
        cuts = batch_longest(data.lengths, batch, self.agree_longest) if cuts_to_longest(self.model) else None
        for i, part in enumerate(parts):
            if cuts is not None:  # as in training: the batch's longest steps
                part = part.cut(cuts[i], self.model.sequence_output)
            with self.precision.autocast():
                output = self.module(part.x, part.lengths, logits=self.objective.fused, trusted=True)
                loss = self.objective(output, part.y, part.mask)
            total += loss.double() * output.shape[0]
            if metrics is not None:
                metrics.add(output, part.y, part.mask)
        logs = {"loss": float(total / data.size)}
        if metrics is not None:
            logs.update(metrics.values())
        return logs

    def _epoch_metrics(self) -> EpochMetrics:
        """What gathers an epoch's metrics, batch by batch (see epoch_metrics.py)."""
        return EpochMetrics(self.model.metrics, self.model.loss, self.objective.probabilities)

    # --- state, for checkpoints -----------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue exactly: plain tensors, numbers,
        strings, lists and dicts only (loadable with `torch.load(weights_only=True)`)."""
        rng: dict[str, Any] = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "epoch": self.epoch,
            "stop_reason": self.stop_reason,
            "module": {k: v.detach().cpu() for k, v in self.module.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "early_stopping": None if self.stopper is None else self.stopper.state_dict(),
            "history": [dict(logs) for logs in self.history],
            "rng": rng,
            "scaler": self.precision.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.stop_reason = str(state["stop_reason"])
        self.module.load_state_dict(state["module"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        if self.stopper is not None and state["early_stopping"] is not None:
            self.stopper.load_state_dict(state["early_stopping"])
        self.history = [dict(logs) for logs in state["history"]]
        torch.set_rng_state(state["rng"]["torch"])
        if self.device.type == "cuda" and "cuda" in state["rng"]:
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        self.precision.load_state_dict(state.get("scaler"))
