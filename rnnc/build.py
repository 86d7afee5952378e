"""From schema-valid spec data to IR values: defaults applied, numbers normalised.

Each function takes one section of a spec that has already passed the JSON Schema and
returns its IR value. Defaults live in the IR dataclasses; the few that depend on
another setting (an optimizer's learning rate, early stopping's mode) are decided here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from . import ir

_MAXIMISED = ("accuracy", "auc", "precision", "recall", "f1")
_DEFAULT_LR = {"sgd": 0.01}
_DEFAULT_WEIGHT_DECAY = {"adamw": 0.004}


def _settings(section: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in section.items() if k != "type"}


def _int_fields(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """JSON Schema accepts 32.0 as an integer and 1 as a number; the IR holds exact types."""
    kinds = {f.name: f.type for f in dataclasses.fields(cls)}
    out = {}
    for name, value in values.items():
        if kinds.get(name) == "int" and isinstance(value, float):
            value = int(value)
        elif kinds.get(name) in ("float", "float | None") and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        out[name] = value
    return out


def build_input(section: dict[str, Any]) -> ir.Input:
    shape = tuple(None if d is None else int(d) for d in section["shape"])
    return ir.Input(shape=shape, dtype=section.get("dtype", "float32"))


WIRING = ("name", "input", "initial_state")  # what a graph's layer says besides its settings (rnnc.graph)


def build_layer(section: dict[str, Any]) -> ir.Layer:
    cls = ir.ALL_KINDS[section["type"]]
    return cls(**_int_fields(cls, {k: v for k, v in _settings(section).items() if k not in WIRING}))


def build_graph_input(name: str, section: dict[str, Any]) -> ir.Input:
    shape = tuple(None if d is None else int(d) for d in section["shape"])
    return ir.Input(shape=shape, dtype=section.get("dtype", "float32"), name=name)


def build_loss(section: str | dict[str, Any]) -> ir.Loss:
    if isinstance(section, str):
        return ir.Loss(type=section)  # type: ignore[arg-type]
    return ir.Loss(type=section["type"], **_int_fields(ir.Loss, _settings(section)))


def build_optimizer(section: str | dict[str, Any]) -> ir.Optimizer:
    if isinstance(section, str):
        section = {"type": section}
    kind = section["type"]
    settings = {
        "lr": _DEFAULT_LR.get(kind, 0.001),
        "weight_decay": _DEFAULT_WEIGHT_DECAY.get(kind, 0.0),
        **_settings(section),
    }
    return ir.Optimizer(type=kind, **_int_fields(ir.Optimizer, settings))


def monitor_mode(monitor: str) -> str:
    """max for accuracy-like logs: `accuracy`, `val_auc`, a graph output's `val_answer_accuracy`."""
    name = monitor.removeprefix("val_")
    return "max" if any(name == m or name.endswith(f"_{m}") for m in _MAXIMISED) else "min"


def build_training(section: dict[str, Any]) -> ir.Training:
    settings = dict(section)
    if (stop := settings.get("early_stopping")) is not None:
        stop = dict(stop)
        if stop.get("mode", "auto") == "auto":
            stop["mode"] = monitor_mode(stop.get("monitor", ir.EarlyStopping.monitor))
        settings["early_stopping"] = ir.EarlyStopping(**_int_fields(ir.EarlyStopping, stop))
    if (schedule := settings.get("lr_schedule")) is not None:
        settings["lr_schedule"] = ir.LRSchedule(**_int_fields(ir.LRSchedule, schedule))
    if "log" in settings:
        settings["log"] = tuple(settings["log"])
    return ir.Training(**_int_fields(ir.Training, settings))


def resolve_path(path: str, base: Path) -> str:
    if "\0" in path:  # resolve() would raise; validation reports the name
        return str(base / path)
    return str((base / path).resolve())


def build_data(section: dict[str, Any], base: Path) -> ir.Data:
    paths = {role: resolve_path(section[role], base) for role in ("train", "validation", "test") if role in section}
    csv = None
    if (windows := section.get("csv")) is not None:
        csv = ir.CsvWindows(
            features=tuple(windows["features"]) if "features" in windows else None,
            targets=tuple(windows["targets"]),
            window=int(windows["window"]),
            horizon=int(windows.get("horizon", 1)),
            all_steps=bool(windows.get("all_steps", False)),
        )
    text = None
    if (tokens := section.get("text")) is not None:
        text = ir.TextData(**_int_fields(ir.TextData, tokens))
    return ir.Data(**paths, csv=csv, text=text)


def build_export(section: dict[str, Any]) -> ir.Export:
    return ir.Export(**_int_fields(ir.Export, section))
