"""The spec's optimizer, learning-rate schedule and early stopping, for torch.

Optimizer settings carry Keras's names and map onto torch's: `beta_1`/`beta_2` ->
`betas`, `epsilon` -> `eps`, `rho` -> `alpha` (RMSprop). `weight_decay` keeps torch's
meaning: an L2 term in the gradient for sgd, adam, rmsprop and adagrad, decoupled decay
for adamw. The schedule sets each epoch's learning rate from the epoch number (step,
cosine) or from the monitored value (plateau, Keras's `ReduceLROnPlateau`); early
stopping is Keras's `EarlyStopping`. Both keep their state in plain numbers
(`state_dict`) so a checkpoint can restore them exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, assert_never

import torch
from torch import nn

from rnnc import ir
from rnnc.build import monitor_mode

from .lean_adam import LeanAdam, LeanAdamW


def make_optimizer(spec: ir.Optimizer, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    params = list(params)
    # torch's fused kernels update every parameter in one call; its default (a loop of
    # small operations per parameter) costs more than a small model's whole step; Adam's
    # and AdamW's reach that call with less Python still (lean_adam.py).
    fused = bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    kind = spec.type
    match kind:
        case "sgd":
            # torch refuses nesterov without momentum; Keras accepts it, to no effect.
            nesterov = spec.nesterov and spec.momentum > 0
            return torch.optim.SGD(
                params, lr=spec.lr, momentum=spec.momentum, nesterov=nesterov, weight_decay=spec.weight_decay, fused=fused
            )
        case "adam":
            return (LeanAdam if fused else torch.optim.Adam)(
                params, lr=spec.lr, betas=(spec.beta_1, spec.beta_2), eps=spec.epsilon, weight_decay=spec.weight_decay, fused=fused
            )
        case "adamw":
            return (LeanAdamW if fused else torch.optim.AdamW)(
                params, lr=spec.lr, betas=(spec.beta_1, spec.beta_2), eps=spec.epsilon, weight_decay=spec.weight_decay, fused=fused
            )
        case "rmsprop":
            return torch.optim.RMSprop(
                params, lr=spec.lr, alpha=spec.rho, eps=spec.epsilon, momentum=spec.momentum, weight_decay=spec.weight_decay
            )
        case "adagrad":
            return torch.optim.Adagrad(params, lr=spec.lr, eps=spec.epsilon, weight_decay=spec.weight_decay, fused=fused)
        case _:
            assert_never(kind)


def improved(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    """Keras's test: better than `best` by more than `min_delta` (NaN never improves)."""
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


class Schedule:
    """The learning rate of each epoch; `None` spec = constant."""

    def __init__(self, spec: ir.LRSchedule | None, base_lr: float, epochs: int):
        self.spec = spec
        self.base_lr = base_lr
        self.epochs = epochs
        self.lr = base_lr  # plateau's current rate
        self.best: float | None = None
        self.wait = 0

    def lr_for(self, epoch: int) -> float:
        """The rate for 1-based `epoch`."""
        spec = self.spec
        if spec is None:
            return self.base_lr
        match spec.type:
            case "step":
                return self.base_lr * spec.gamma ** ((epoch - 1) // spec.step_size)
            case "cosine":
                # From the base rate at the first epoch towards min_lr, which it would reach
                # after the last (PyTorch's CosineAnnealingLR with T_max = epochs, stepped per
                # epoch; Keras's CosineDecay): no epoch trains at min_lr, so 0 wastes none.
                progress = (epoch - 1) / self.epochs
                return spec.min_lr + (self.base_lr - spec.min_lr) * (1 + math.cos(math.pi * min(progress, 1.0))) / 2
            case "plateau":
                return self.lr
            case _:
                assert_never(spec.type)

    def end_epoch(self, logs: dict[str, float]) -> None:
        """Plateau: after `patience` epochs without improvement, multiply by `factor`."""
        spec = self.spec
        if spec is None or spec.type != "plateau":
            return
        value = logs[spec.monitor]
        if improved(value, self.best, monitor_mode(spec.monitor)):
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= spec.patience:
            self.lr = max(self.lr * spec.factor, spec.min_lr)
            self.wait = 0

    def state_dict(self) -> dict[str, Any]:
        return {"lr": self.lr, "best": self.best, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.lr, self.best, self.wait = float(state["lr"]), state["best"], int(state["wait"])


class EarlyStopping:
    """Stops when `monitor` has not improved for `patience` epochs; keeps the best
    epoch's parameters (a CPU copy) for `restore_best`."""

    def __init__(self, spec: ir.EarlyStopping):
        self.spec = spec
        self.mode = spec.mode if spec.mode in ("min", "max") else monitor_mode(spec.monitor)
        self.best: float | None = None
        self.best_epoch = 0
        self.wait = 0
        self.best_state: dict[str, torch.Tensor] | None = None

    def end_epoch(self, epoch: int, logs: dict[str, float], module: nn.Module) -> bool:
        """Record `epoch`; True when training should stop."""
        value = logs[self.spec.monitor]
        if improved(value, self.best, self.mode, self.spec.min_delta):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.spec.restore_best:
                self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
            return False
        self.wait += 1
        return self.wait >= self.spec.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait, "best_state": self.best_state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.wait = state["best"], int(state["best_epoch"]), int(state["wait"])
        self.best_state = state["best_state"]
