"""Optimizers (Keras names onto torch's), learning-rate schedules and early stopping."""

from __future__ import annotations

import math

import pytest
import torch

from rnnc import ir
from rnnc_torch.optim import EarlyStopping, Schedule, make_optimizer

# (spec, torch class, the param_group settings it must carry)
OPTIMIZERS = [
    (ir.Optimizer("sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01), torch.optim.SGD,
     {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    (ir.Optimizer("sgd", lr=0.1, nesterov=True), torch.optim.SGD, {"momentum": 0.0, "nesterov": False}),
    (ir.Optimizer("adam", lr=0.002, beta_1=0.8, beta_2=0.95, epsilon=1e-6), torch.optim.Adam,
     {"lr": 0.002, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.0}),
    (ir.Optimizer("adamw", weight_decay=0.004), torch.optim.AdamW, {"weight_decay": 0.004, "eps": 1e-7}),
    (ir.Optimizer("rmsprop", lr=0.01, rho=0.8, momentum=0.5, epsilon=1e-5), torch.optim.RMSprop,
     {"lr": 0.01, "alpha": 0.8, "momentum": 0.5, "eps": 1e-5}),
    (ir.Optimizer("adagrad", lr=0.05, epsilon=1e-8), torch.optim.Adagrad, {"lr": 0.05, "eps": 1e-8}),
]


@pytest.mark.parametrize(("spec", "cls", "settings"), OPTIMIZERS, ids=[f"{o[0].type}-{i}" for i, o in enumerate(OPTIMIZERS)])
def test_optimizer_settings_map_to_torch(spec: ir.Optimizer, cls: type, settings: dict) -> None:
    optimizer = make_optimizer(spec, [torch.nn.Parameter(torch.zeros(2))])
    assert isinstance(optimizer, cls)  # Adam and AdamW: lean_adam.py's subclasses
    group = optimizer.param_groups[0]
    for key, value in settings.items():
        assert group[key] == value, key


# (schedule, base lr, epochs, expected lr for epochs 1..epochs)
SCHEDULES = [
    (None, 0.1, 3, [0.1, 0.1, 0.1]),
    (ir.LRSchedule("step", step_size=2, gamma=0.5), 0.1, 5, [0.1, 0.1, 0.05, 0.05, 0.025]),
    (ir.LRSchedule("cosine", min_lr=0.01), 0.1, 3, [0.1, 0.0775, 0.0325]),  # PyTorch's CosineAnnealingLR(T_max=3)
    (ir.LRSchedule("cosine"), 0.1, 1, [0.1]),
]


@pytest.mark.parametrize(("spec", "base", "epochs", "expected"), SCHEDULES, ids=["constant", "step", "cosine", "cosine-1"])
def test_schedule_by_epoch(spec: ir.LRSchedule | None, base: float, epochs: int, expected: list[float]) -> None:
    schedule = Schedule(spec, base, epochs)
    assert [schedule.lr_for(e) for e in range(1, epochs + 1)] == pytest.approx(expected)


def test_plateau_decays_after_patience_epochs_without_improvement() -> None:
    schedule = Schedule(ir.LRSchedule("plateau", factor=0.5, patience=2, min_lr=0.03), 0.1, 10)
    seen = []
    for value in [1.0, 0.9, 0.95, 0.91, 0.92, 0.93, 0.8, 0.85, 0.86]:
        seen.append(schedule.lr_for(0))
        schedule.end_epoch({"val_loss": value})
    # two epochs without improving on 0.9 -> 0.05; two more -> floor 0.03
    assert seen == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.03, 0.03, 0.03])


def test_plateau_state_round_trips() -> None:
    spec = ir.LRSchedule("plateau", patience=1)
    first = Schedule(spec, 0.1, 5)
    first.end_epoch({"val_loss": 1.0})
    first.end_epoch({"val_loss": 2.0})
    second = Schedule(spec, 0.1, 5)
    second.load_state_dict(first.state_dict())
    assert second.state_dict() == first.state_dict() and second.lr_for(3) == pytest.approx(0.01)


def run_stopper(spec: ir.EarlyStopping, values: list[float]) -> tuple[int | None, EarlyStopping]:
    stopper = EarlyStopping(spec)
    module = torch.nn.Linear(1, 1)
    for epoch, value in enumerate(values, 1):
        with torch.no_grad():
            module.weight.fill_(epoch)
        if stopper.end_epoch(epoch, {spec.monitor: value}, module):
            return epoch, stopper
    return None, stopper


# (spec, monitored values, epoch it stops at, best epoch)
STOPPING = [
    (ir.EarlyStopping(patience=2), [1.0, 0.8, 0.9, 0.85, 0.7], 4, 2),
    (ir.EarlyStopping(patience=2, min_delta=0.15), [1.0, 0.9, 0.88, 0.5], 3, 1),
    (ir.EarlyStopping(monitor="val_accuracy", mode="max", patience=1), [0.5, 0.7, 0.6], 3, 2),
    (ir.EarlyStopping(patience=3), [1.0, 0.9, 0.8, 0.7], None, 4),
    (ir.EarlyStopping(patience=1), [1.0, math.nan], 2, 1),
]


@pytest.mark.parametrize(("spec", "values", "stops", "best"), STOPPING, ids=["patience", "min_delta", "max", "never", "nan"])
def test_early_stopping(spec: ir.EarlyStopping, values: list[float], stops: int | None, best: int) -> None:
    stopped, stopper = run_stopper(spec, values)
    assert stopped == stops
    assert stopper.best_epoch == best
    assert stopper.best_state is not None and stopper.best_state["weight"].item() == best


def test_cosine_follows_torchs_cosine_annealing_stepped_per_epoch() -> None:
    """The same rates as torch's own scheduler, so the last epoch still trains (min_lr 0)."""
    epochs, base = 7, 0.05
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=0.0)
    expected = []
    for _ in range(epochs):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        reference.step()
    schedule = Schedule(ir.LRSchedule("cosine"), base, epochs)
    assert [schedule.lr_for(e) for e in range(1, epochs + 1)] == pytest.approx(expected, rel=1e-12)
    assert schedule.lr_for(epochs) > 0
