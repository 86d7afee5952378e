"""`rnnc train`'s work: a training run that leaves a run directory behind.

The data is loaded and checked before anything is created, so bad data leaves no
half-made directory. The run directory then holds the resolved spec (`spec.yaml`), the
weights under their IR names (`weights.safetensors`), a resumable checkpoint
(`checkpoint.pt`), one JSON line of logs per epoch (`metrics.jsonl`) and, for raw text,
the vocabulary (`vocab.json`): the names of `rnnc.run_dir`, from which the CLI then
has the exporting backend write `model.onnx` (this backend knows no other); a graph's
class names are kept per output, in the weights' metadata (`output_classes`). The
checkpoint, weights and metrics are rewritten atomically at the end of every epoch, so
a run killed at any moment resumes (`resume=True`) from its last completed epoch and
ends with the same weights, bit for bit, as a run never interrupted; a run interrupted
with Ctrl-C keeps its last completed epoch's weights. A loss that turns NaN or inf
ends the run with a `TrainingError`, the previous epoch's checkpoint and weights left
in place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rnnc import ir
from rnnc.artifacts import atomic_open, atomic_write_text, save_weights, stored_classes
from rnnc.data import TrainingData, load_training_data
from rnnc.errors import TrainingError, UsageError
from rnnc.graph_data import OUTPUT_CLASSES, GraphDataset, stored_output_classes
from rnnc.run_dir import METRICS, MODEL, SPEC, VOCAB, WEIGHTS

from .checkpoint import load_checkpoint, save_checkpoint
from .distributed import World, session
from .trainers import make_trainer
from .fit import History, printer
from .cpu import set_to
from .trainer import Trainer

CHECKPOINT = "checkpoint.pt"  # this backend's own file; the shared ones are rnnc.run_dir's


def fingerprint(model: ir.Model, spec: Mapping[str, Any] | None) -> str:
    """What must not change between a run and its resumption: the spec, except for
    `training.epochs` (resuming may extend a run), `training.log` (what records the
    run) and the description."""
    if spec is None:
        return model.spec_hash
    data = json.loads(json.dumps(spec, default=str))
    data.pop("description", None)
    if isinstance(data.get("training"), dict):
        data["training"].pop("epochs", None)
        data["training"].pop("log", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _json_logs(logs: dict[str, Any]) -> str:
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in logs.items()}
    return json.dumps(clean)


def _weights_metadata(model: ir.Model, trainer: Trainer, data: TrainingData) -> dict[str, str]:
    meta = {"rnnc_spec_hash": model.spec_hash, "name": model.name, "epoch": str(trainer.epoch)}
    if model.graph is not None:  # each output's classes, where the data names them
        if data.train.classes:
            meta[OUTPUT_CLASSES] = json.dumps({k: list(v) for k, v in data.train.classes.items()})
    elif data.train.classes is not None:
        meta["classes"] = json.dumps(list(data.train.classes))
    return meta


def train_run(
    model: ir.Model,
    run_dir: str | os.PathLike[str],
    *,
    spec: Mapping[str, Any] | None = None,
    resume: bool = False,
    device: str = "auto",
    progress: bool = True,
    threads: int | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    weights: Mapping[str, np.ndarray] | None = None,
) -> History:
    """Train `model` into `run_dir`; `spec` is the resolved spec data written as
    `spec.yaml` (default: none written). Returns the history of the whole run, with the
    test set's logs as `history.test` when the data has one. In a torchrun worker
    (docs/distributed.md) the run is data-parallel: every rank trains, rank 0 alone
    reads the checkpoint and writes the run directory. `threads` sets torch's intra-op
    threads for the run (default: as they are). `on_epoch` is called with a copy of
    each epoch's logs once the epoch is saved (checkpoint, metrics.jsonl, weights), on
    rank 0 only; what it raises ends the run there, that epoch kept. `weights` start a
    fresh run instead of initial weights drawn from `training.seed` (every rank loads them)."""
    with set_to(threads), session(device) as (world, target):
        return _train_run(model, Path(run_dir), spec, resume, target, progress, world, on_epoch, weights)


def _train_run(
    model: ir.Model, run: Path, spec: Mapping[str, Any] | None, resume: bool, target: Any, progress: bool, world: World | None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None, weights: Mapping[str, np.ndarray] | None = None,
) -> History:
    main = world is None or world.is_main
    data = load_training_data(model)
    mark = fingerprint(model, spec)
    state = _resume_state(run, mark) if resume and main else None
    if state is not None:
        _check_same_encoding(run, data)
    trainer = make_trainer(model, target, world)
    if weights is not None and state is None:
        trainer.module.load_ir_state(weights)
    if world is not None:
        trainer.adopt(state)  # type: ignore[attr-defined]  # collective: rank 0's checkpoint on every rank
    elif state is not None:
        trainer.load_state_dict(state)
    if main:
        if state is not None:
            print(f"resuming {run} after epoch {trainer.epoch}", file=sys.stderr)
        else:
            _start_fresh(run)
        _drop_leftovers(run)
        if spec is not None:
            atomic_write_text(run / SPEC, yaml.safe_dump(dict(spec), sort_keys=False, allow_unicode=True))
        if data.vocab is not None:
            atomic_write_text(run / VOCAB, data.vocab.to_json())

    epochs = model.training.epochs
    show = printer(epochs)

    def save_epoch(trainer: Trainer, logs: dict[str, Any]) -> None:
        state = trainer.state_dict()  # collective in a distributed run: every rank's RNG
        if not main:
            return
        show(trainer, logs)
        save_checkpoint(run / CHECKPOINT, state, mark)
        with atomic_open(run / METRICS, "w") as handle:
            handle.writelines(_json_logs(entry) + "\n" for entry in trainer.history)
        save_weights(run / WEIGHTS, trainer.module.ir_state(), _weights_metadata(model, trainer, data))
        if on_epoch is not None:
            on_epoch(dict(logs))

    try:
        trainer.run(data.train, data.validation, progress=progress, hooks=[save_epoch])
        test = trainer.evaluate(trainer.on_device(data.test)) if data.test is not None else None
    except TrainingError as err:
        kept = f"the checkpoint of epoch {trainer.epoch} is kept in {run}" if trainer.epoch else "no epoch completed"
        raise TrainingError(f"{err} ({kept}); try a lower optimizer.lr or training.gradient_clip") from None
    if not main:
        return History(trainer.history, trainer.module, trainer.stop_reason)
    for note in (trainer.stop_reason, trainer.restored):
        if note:
            print(note, flush=True)
    save_weights(run / WEIGHTS, trainer.module.ir_state(), _weights_metadata(model, trainer, data))
    if test is not None:
        print("test  " + "  ".join(f"{k} {v:.4f}" for k, v in test.items()), flush=True)
    history = History(trainer.history, trainer.module, trainer.stop_reason)
    history.test = test
    return history


def _resume_state(run: Path, mark: str) -> dict[str, Any] | None:
    if not run.is_dir():
        raise UsageError(f"--resume: {run} is not a run directory (pass the -o of the run to continue)")
    if not (run / CHECKPOINT).exists():
        print(f"{run}: no checkpoint yet; starting from epoch 1", file=sys.stderr)
        return None
    return load_checkpoint(run / CHECKPOINT, mark)


def _check_same_encoding(run: Path, data: TrainingData) -> None:
    """A resumed run must read its data as the run began to: the same class names in the
    same order and the same vocabulary, or its weights would mean other things. They come
    from the data files, which the spec fingerprint does not cover."""
    if isinstance(data.train, GraphDataset):  # each output's classes
        kept = stored_output_classes(run / WEIGHTS) if (run / WEIGHTS).exists() else None
        given = {k: list(v) for k, v in data.train.classes.items()}
        if (kept or {}) != given and (run / WEIGHTS).exists():
            raise UsageError(f"--resume: the training data's classes ({json.dumps(given)}) are not those the run "
                             f"in {run} began with ({json.dumps(kept or {})}); train a fresh run")
        return
    stored = stored_classes(run / WEIGHTS) if (run / WEIGHTS).exists() else None
    classes = list(data.train.classes or ())
    if stored is not None and stored != classes:
        raise UsageError(
            f"--resume: the training data's classes ({', '.join(classes)}) are not those the run "
            f"in {run} began with ({', '.join(stored)}); train a fresh run"
        )
    if data.vocab is not None and (run / VOCAB).exists() and (run / VOCAB).read_text(encoding="utf-8") != data.vocab.to_json():
        raise UsageError(f"--resume: the training data gives another vocabulary than {run / VOCAB}; train a fresh run")


def _drop_leftovers(run: Path) -> None:
    """Remove the temporary files of writes a killed run never finished (`.NAME.XXXX.tmp`,
    see `rnnc.artifacts.atomic_open`): the finished files beside them are whole."""
    for name in (SPEC, CHECKPOINT, METRICS, WEIGHTS, MODEL, VOCAB):
        for leftover in run.glob(f".{name}.*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def _start_fresh(run: Path) -> None:
    """A new run: drop an earlier run's artifacts so none can be mistaken for this one's."""
    if run.exists() and not run.is_dir():
        raise UsageError(f"-o {run}: exists and is not a directory")
    try:
        run.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a parent that is a file, no permission, a read-only disk
        raise UsageError(f"-o {run}: cannot create the run directory: {err.strerror or err}") from None
    stale = [name for name in (CHECKPOINT, METRICS, WEIGHTS, MODEL, VOCAB) if (run / name).exists()]
    if stale:
        print(f"{run}: replacing the previous run's files (use --resume to continue it)", file=sys.stderr)
    for name in stale:
        with contextlib.suppress(FileNotFoundError):
            (run / name).unlink()
