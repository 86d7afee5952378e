"""`fit`: train an IR model from Python (a notebook, a script) and get its history.

    from rnnc.spec import load_model
    from rnnc_torch.fit import fit

    model = load_model("specs/seed_binary.yaml")
    history = fit(model)                # the spec's data files; or fit(model, x, y)
                                        # a graph (spec v2): fit(model, {"events": ..., "churn": ...})
    history[-1]["val_accuracy"]         # one dict per epoch
    weights = history.weights()         # {IR name: float32 array}, as in weights.safetensors

`fit` is the same loop as `rnnc train` without the run directory: no checkpoint, no
files. Data goes through `rnnc.data`'s checks either way. This module also holds the
Keras-like line printed per epoch, which the CLI shares; the device choice is
`rnnc_torch.device`'s (re-exported here).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

import numpy as np

from rnnc import ir
from rnnc.data import Dataset, from_arrays, load_training_data
from rnnc.errors import UsageError
from rnnc.graph_data import GraphDataset, graph_dataset

from .device import resolve_device  # noqa: F401  (re-exported: `from rnnc_torch.fit import resolve_device`)
from .distributed import session
from .trainers import make_trainer
from .model import SpecModule
from .trainer import Trainer

Callback = Callable[[dict[str, Any]], None]


class History(list):  # type: ignore[type-arg]
    """The per-epoch logs of a run (a list of dicts: `epoch`, `loss`, the metrics, the
    `val_` ones, `lr`, `time`), with the trained `module` and why training stopped early
    (`stop_reason`, empty when it ran every epoch) and, from `rnnc train`, the test
    set's logs (`test`, None without test data)."""

    def __init__(self, epochs: Sequence[dict[str, Any]], module: SpecModule, stop_reason: str = ""):
        super().__init__(epochs)
        self.module = module
        self.stop_reason = stop_reason
        self.test: dict[str, Any] | None = None

    def weights(self) -> dict[str, np.ndarray]:
        """The trained parameters under their IR names (what `save_weights` writes)."""
        return self.module.ir_state()

    def column(self, key: str) -> list[Any]:
        """One log value per epoch, e.g. `history.column("val_loss")`."""
        return [logs.get(key) for logs in self]


def _number(value: Any) -> str:
    if not isinstance(value, float):
        return str(value)
    if math.isnan(value) or value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4f}"
    return f"{value:.3e}"


def format_logs(logs: dict[str, Any], epochs: int) -> str:
    """`epoch 3/20  loss 0.4120  accuracy 0.8610  val_loss 0.3980  lr 0.001  1.2s`."""
    parts = [f"epoch {logs['epoch']}/{epochs}"]
    parts += [f"{key} {_number(value)}" for key, value in logs.items() if key not in ("epoch", "lr", "time")]
    parts.append(f"lr {logs['lr']:.3g}")
    parts.append(f"{logs['time']:.1f}s")
    return "  ".join(parts)


def printer(epochs: int, stream: TextIO | None = None) -> Callable[[Trainer, dict[str, Any]], None]:
    """An epoch hook printing the Keras-like line (stdout by default)."""

    def hook(trainer: Trainer, logs: dict[str, Any]) -> None:
        print(format_logs(logs, epochs), file=stream or sys.stdout, flush=True)

    return hook


def _dataset(model: ir.Model, data: Any, origin: str) -> Dataset:
    if isinstance(data, Dataset | GraphDataset):
        return data  # type: ignore[return-value]
    if model.graph is not None:
        if not isinstance(data, Mapping):
            raise UsageError(f"{origin}: a graph takes its data as a mapping of arrays named as in its .npz files")
        return graph_dataset(model, data, origin)  # type: ignore[return-value]
    if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
        raise UsageError(f"{origin}: expected (x, y) or (x, y, lengths)")
    return from_arrays(model, *data, origin=origin)


def fit(
    model: ir.Model,
    x: np.ndarray | Mapping[str, np.ndarray] | None = None,
    y: np.ndarray | None = None,
    lengths: np.ndarray | None = None,
    *,
    validation: Dataset | tuple[np.ndarray, ...] | None = None,
    device: str = "auto",
    progress: bool = True,
    verbose: bool = True,
    callbacks: Sequence[Callback] = (),
) -> History:
    """Train `model` as its spec's `training` section says and return the `History`.

    Without `x` and `y` the spec's data files are used (`data.train`, `data.validation`
    or `training.validation_split`). With arrays, `validation` may be `(x, y)`,
    `(x, y, lengths)` or a `Dataset`; when it is None the spec's `validation_split`
    holds out the last fraction of `x`. `progress` shows a tqdm bar per epoch on
    stderr, `verbose` prints one line per epoch; each callback gets each epoch's logs.
    Raises `DataError` for data that does not fit the model and `TrainingError` when the
    loss turns NaN or inf. Started by torchrun, each worker trains its shard with DDP
    (docs/distributed.md); every rank gets the same history, rank 0 alone prints.
    """
    if x is None and y is None:
        files = load_training_data(model)
        train, val = files.train, files.validation
    elif model.graph is not None:
        if y is not None or lengths is not None:
            raise UsageError("fit: a graph takes one mapping of arrays, named as in its .npz files: fit(model, arrays)")
        train = _dataset(model, x, "arrays")
        val = None if validation is None else _dataset(model, validation, "validation")
        if val is None and model.training.validation_split > 0:
            train, val = train.split(model.training.validation_split)
    elif x is None or y is None:
        raise UsageError("fit: give both x and y, or neither (to use the spec's data files)")
    else:
        train = from_arrays(model, x, y, lengths, origin="x, y")
        val = None if validation is None else _dataset(model, validation, "validation")
        if val is None and model.training.validation_split > 0:
            train, val = train.split(model.training.validation_split)
    with session(device) as (world, target):  # under torchrun: data-parallel, DDP
        trainer = make_trainer(model, target, world)
        verbose = verbose and (world is None or world.is_main)
        hooks = [printer(model.training.epochs)] if verbose else []
        hooks += [lambda _trainer, logs, cb=cb: cb(dict(logs)) for cb in callbacks]
        trainer.run(train, val, progress=progress, hooks=hooks)
    for note in (trainer.stop_reason, trainer.restored):
        if verbose and note:
            print(note, flush=True)
    return History(trainer.history, trainer.module, trainer.stop_reason)
