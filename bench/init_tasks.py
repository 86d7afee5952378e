"""bench/init_study.py's suite: shipped specs, examples, and tasks of its own of each kind.

Each task is a spec (its model, optimizer, batch and loss; fixed epochs, no early
stopping, no plateau schedule, no validation split while training) with its training
arrays and a held-out set, as rnnc's data loaders read them. The study's own tasks
draw their data from a fixed numpy seed, so every run sees the same arrays.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rnnc import ir
from rnnc.data import load_training_data
from rnnc.dataset import Dataset
from rnnc.spec import model_from_mapping, resolved_spec

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Task:
    name: str
    kind: str  # classification, regression, text, variable length
    source: str  # the spec file, or "own"
    metric: str  # accuracy, mae or mse on the held-out set
    spec: dict[str, Any]
    base: Path
    train: Dataset
    held_out: Dataset
    held_out_name: str
    settings: dict[str, Any] = field(default_factory=dict)

    def model(self, scheme: str, seed: int) -> ir.Model:
        spec = copy.deepcopy(self.spec)
        spec["training"] = {**spec.get("training", {}), "initializer": scheme, "seed": seed}
        return model_from_mapping(spec, self.name, self.base)


def _fixed(spec: dict[str, Any], epochs: int | None) -> dict[str, Any]:
    """The spec with fixed epochs: no early stopping, no plateau schedule, no split."""
    spec = copy.deepcopy(spec)
    training = spec.setdefault("training", {})
    for key in ("early_stopping", "validation_split"):
        training.pop(key, None)
    if training.get("lr_schedule", {}).get("type") not in (None, "cosine"):
        training.pop("lr_schedule")
    if epochs is not None:
        training["epochs"] = epochs
    spec["metrics"] = []
    return spec


def shipped(name: str, path: str, kind: str, metric: str, epochs: int | None = None, rows: int | None = None,
            spec_changes: Callable[[dict[str, Any]], None] | None = None) -> Callable[[], Task]:
    """A spec of the repository, on its own data files (`rows`: the first rows of its training set)."""

    def make() -> Task:
        file = ROOT / path
        spec = resolved_spec(file)
        if spec_changes is not None:
            spec_changes(spec)
        files = load_training_data(model_from_mapping(spec, name, file.parent))
        held, held_name = (files.test, "test") if files.test is not None else (files.validation, "validation")
        assert held is not None, name
        train = files.train if rows is None else files.train.select(slice(0, rows))
        fixed = _fixed(spec, epochs)
        changed = {"epochs": fixed["training"].get("epochs", 10)}
        if rows is not None:
            changed["training rows"] = rows
        if spec.get("training", {}).get("early_stopping"):
            changed["early_stopping"] = "off"
        if spec.get("training", {}).get("lr_schedule") and "lr_schedule" not in fixed["training"]:
            changed["lr_schedule"] = "off"
        return Task(name, kind, path, metric, fixed, file.parent, train, held, held_name, changed)

    return make


def _own(name: str, kind: str, metric: str, spec: dict[str, Any], make_data: Callable[[np.random.Generator], tuple],
         settings: dict[str, Any]) -> Callable[[], Task]:
    def make() -> Task:
        rng = np.random.default_rng(1234)
        train, held = make_data(rng)
        full = {"rnnc": 1, "name": name, **spec}
        return Task(name, kind, "own", metric, full, ROOT, train, held, "test", settings)

    return make


def _dataset(x: np.ndarray, y: np.ndarray, lengths: np.ndarray | None = None) -> Dataset:
    return Dataset(x=x, y=y, lengths=lengths, origin="init_study")


def _split(x: np.ndarray, y: np.ndarray, lengths: np.ndarray | None, test: int) -> tuple[Dataset, Dataset]:
    cut = len(x) - test
    return (_dataset(x[:cut], y[:cut], None if lengths is None else lengths[:cut]),
            _dataset(x[cut:], y[cut:], None if lengths is None else lengths[cut:]))


def adding(rng: np.random.Generator) -> tuple[Dataset, Dataset]:
    """The adding problem (Hochreiter and Schmidhuber): the sum of the two marked values of 30."""
    n, steps = 3000, 30
    values = rng.uniform(0, 1, (n, steps))
    marks = np.zeros((n, steps))
    first, second = rng.integers(0, steps // 2, n), rng.integers(steps // 2, steps, n)
    marks[np.arange(n), first] = marks[np.arange(n), second] = 1
    y = (values * marks).sum(1, keepdims=True)
    return _split(np.stack([values, marks], -1).astype(np.float32), y.astype(np.float32), None, 1000)


GLYPHS = ["111101101101111", "010110010010111", "111001111100111", "111001111001111", "101101111001001",
          "111100111001111", "111100111101111", "111001010010010", "111101111101111", "111101111001111"]


def digit_rows(rng: np.random.Generator) -> tuple[Dataset, Dataset]:
    """8x8 images of the ten digits read row by row (8 steps of 8 pixels): 5x3 glyphs
    scaled to 6x4 or 5x3 at a random place, strokes dimmed at random, noise added."""
    n = 3000
    labels = rng.integers(0, 10, n)
    images = np.zeros((n, 8, 8))
    for i, label in enumerate(labels):
        glyph = np.array([int(c) for c in GLYPHS[label]], float).reshape(5, 3)
        if rng.random() < 0.5:
            glyph = np.repeat(np.repeat(glyph, [1, 2, 1, 1, 1], 0), [1, 2, 1], 1)[:6, :4]
        h, w = glyph.shape
        top, left = rng.integers(0, 9 - h), rng.integers(0, 9 - w)
        images[i, top:top + h, left:left + w] = glyph * rng.uniform(0.5, 1.0, glyph.shape)
    images += rng.normal(0, 0.15, images.shape)
    return _split(images.astype(np.float32), labels.astype(np.int64), None, 1000)


def signs(rng: np.random.Generator) -> tuple[Dataset, Dataset]:
    """Variable length (5-30 steps of one number, padded with junk): is the mean of the first half above the second's?"""
    n, longest = 3000, 30
    lengths = rng.integers(5, longest + 1, n)
    x = rng.normal(0, 1, (n, longest, 1))
    y = np.zeros((n, 1))
    for i, length in enumerate(lengths):
        half = length // 2
        y[i, 0] = x[i, :half, 0].mean() > x[i, half:length, 0].mean()
        x[i, length:, 0] = 9.0  # padding: never read
    return _split(x.astype(np.float32), y.astype(np.float32), lengths.astype(np.int64), 1000)


def first_token(rng: np.random.Generator) -> tuple[Dataset, Dataset]:
    """Text of 8-30 tokens of 39 (id 0 pads): is the first token one of the upper half?"""
    n, longest, vocab = 3000, 30, 40
    lengths = rng.integers(8, longest + 1, n)
    ids = np.zeros((n, longest), np.int64)
    for i, length in enumerate(lengths):
        ids[i, :length] = rng.integers(1, vocab, length)
    y = (ids[:, :1] >= vocab // 2).astype(np.float32)
    return _split(ids, y, lengths.astype(np.int64), 1000)


def _sunspot_regression(spec: dict[str, Any]) -> None:
    """The issue's sunspots task: LSTM(32) forecasting next year's scaled number, MAE."""
    spec["layers"] = [{"type": "lstm", "units": 32}, {"type": "dense", "units": 1}]
    spec["loss"] = "mse"
    spec["metrics"] = []
    spec["data"]["csv"]["targets"] = ["scaled"]


def _opts(**options: Any) -> dict[str, Any]:
    return {"optimizer": {"type": "adam", "lr": 0.003}, **options}


TASKS: dict[str, Callable[[], Task]] = {
    "sunspots_mae": shipped("sunspots_mae", "examples/sunspots/spec.yaml", "regression", "mae", epochs=100,
                            spec_changes=_sunspot_regression),
    "sunspots_rises": shipped("sunspots_rises", "examples/sunspots/spec.yaml", "classification", "accuracy", epochs=60),
    "seed_binary": shipped("seed_binary", "specs/seed_binary.yaml", "classification", "accuracy"),
    "lstm_classifier": shipped("lstm_classifier", "specs/lstm_classifier.yaml", "classification", "accuracy", epochs=12),
    "gru_forecaster": shipped("gru_forecaster", "specs/gru_forecaster.yaml", "regression", "mae", epochs=10),
    "text_lstm": shipped("text_lstm", "specs/text_lstm.yaml", "text", "accuracy", epochs=8),
    "gru_stacked_bidir": shipped("gru_stacked_bidir", "specs/gru_stacked_bidir.yaml", "text, variable length", "accuracy",
                                 epochs=15),
    "lang_id": shipped("lang_id", "examples/lang_id/spec.yaml", "text, variable length", "accuracy", epochs=6, rows=6000),
    "co2_forecast": shipped("co2_forecast", "examples/co2_forecast/spec.yaml", "regression", "mae", epochs=15),
    "adding": _own("adding", "regression", "mse", {
        "input": {"shape": [30, 2]}, "layers": [{"type": "lstm", "units": 32}, {"type": "dense", "units": 1}],
        "loss": "mse", **_opts(), "training": {"epochs": 15, "batch_size": 32}}, adding,
        {"epochs": 15, "steps": 30}),
    "digit_rows": _own("digit_rows", "classification", "accuracy", {
        "input": {"shape": [8, 8]}, "layers": [{"type": "lstm", "units": 64}, {"type": "dense", "units": 10, "activation": "softmax"}],
        "loss": "sparse_categorical_crossentropy", **_opts(), "training": {"epochs": 30, "batch_size": 32}}, digit_rows,
        {"epochs": 30}),
    "signs": _own("signs", "variable length", "accuracy", {
        "input": {"shape": [None, 1]}, "layers": [{"type": "gru", "units": 32}, {"type": "dense", "units": 1, "activation": "sigmoid"}],
        "loss": "binary_crossentropy", **_opts(), "training": {"epochs": 8, "batch_size": 32}}, signs,
        {"epochs": 8, "steps": "5-30"}),
    "first_token": _own("first_token", "text, variable length", "accuracy", {
        "input": {"shape": [None], "dtype": "int64"},
        "layers": [{"type": "embedding", "vocab_size": 40, "dim": 16, "mask_zero": True}, {"type": "lstm", "units": 32},
                   {"type": "dense", "units": 1, "activation": "sigmoid"}],
        "loss": "binary_crossentropy", **_opts(), "training": {"epochs": 10, "batch_size": 32}}, first_token,
        {"epochs": 10, "steps": "8-30"}),
}

# Longer runs of two tasks above, for bench/init_embedding.py's question of which effect
# lasts; init_study.py runs them only when named (--tasks).
LONGER: dict[str, Callable[[], Task]] = {
    "lang_id_full": shipped("lang_id_full", "examples/lang_id/spec.yaml", "text, variable length", "accuracy", epochs=12),
    "gru_stacked_bidir_long": shipped("gru_stacked_bidir_long", "specs/gru_stacked_bidir.yaml", "text, variable length",
                                      "accuracy", epochs=45),
}
ALL: dict[str, Callable[[], Task]] = {**TASKS, **LONGER}
