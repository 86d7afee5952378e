"""The training loop through `fit`: determinism, divergence, early stopping, clipping,
masking, and the History it returns."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from tiny_models import binary_data, tiny_model

from rnnc import ir
from rnnc.data import Dataset, from_arrays
from rnnc.errors import TrainingError, UsageError
from rnnc_torch.fit import fit
from rnnc_torch.trainer import DeviceData, Trainer

QUIET = {"progress": False, "verbose": False, "device": "cpu"}
DROPOUT_MODEL = [ir.GRU(units=8, dropout=0.2), ir.Dropout(rate=0.3), ir.Dense(units=1, activation="sigmoid")]


def weights_after(model: ir.Model, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    return fit(model, x, y, **QUIET).weights()


def test_same_seed_gives_bit_identical_weights() -> None:
    model = tiny_model(DROPOUT_MODEL, epochs=2, seed=7)
    x, y = binary_data()
    first, second = weights_after(model, x, y), weights_after(model, x, y)
    assert first.keys() == {p.name for p in model.params}
    for name in first:
        assert np.array_equal(first[name], second[name]), name


def test_another_seed_gives_other_weights() -> None:
    x, y = binary_data()
    first = weights_after(tiny_model(DROPOUT_MODEL, epochs=1, seed=1), x, y)
    second = weights_after(tiny_model(DROPOUT_MODEL, epochs=1, seed=2), x, y)
    assert not np.array_equal(first["layers.0.weight_ih"], second["layers.0.weight_ih"])


def test_it_learns() -> None:
    model = tiny_model(epochs=6, metrics=("accuracy",))
    x, y = binary_data(n=256)
    history = fit(model, x, y, validation=binary_data(n=128, seed=1), **QUIET)
    assert history[-1]["loss"] < 0.7 * history[0]["loss"]
    assert history[-1]["val_accuracy"] > 0.8


def test_diverging_loss_stops_training() -> None:
    model = tiny_model([ir.SimpleRNN(units=4, activation="relu"), ir.Dense(units=1)], loss="mse",
                       optimizer=ir.Optimizer("sgd", lr=1e10), epochs=3)
    x, y = binary_data()
    with pytest.raises(TrainingError, match=r"loss is (nan|inf); training diverged"):
        fit(model, x, y, **QUIET)


def test_history_logs_and_callbacks() -> None:
    model = tiny_model(epochs=2, metrics=("accuracy", "auc"))
    x, y = binary_data()
    seen: list[dict] = []
    history = fit(model, x, y, validation=binary_data(n=32, seed=3), callbacks=[seen.append], **QUIET)
    assert [logs["epoch"] for logs in history] == [1, 2]
    assert set(history[0]) == {"epoch", "loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc", "lr", "time"}
    assert seen == list(history)
    assert history.column("epoch") == [1, 2]
    assert history.stop_reason == ""


def test_validation_split_holds_out_the_last_samples() -> None:
    model = tiny_model(epochs=1, validation_split=0.25)
    x, y = binary_data(n=40)
    history = fit(model, x, y, **QUIET)
    expected = Trainer(model).module
    expected.load_ir_state(history.weights())
    trainer = Trainer(model)
    trainer.module = expected
    held_out = from_arrays(model, x[30:], y[30:])
    assert history[0]["val_loss"] == pytest.approx(trainer.evaluate(DeviceData.of(model, held_out, torch.device("cpu")))["loss"])


def test_early_stopping_restores_the_best_epoch() -> None:
    stop = ir.EarlyStopping(monitor="val_loss", patience=1, restore_best=True)
    # A learning rate this high makes val_loss bounce, so training stops early.
    model = tiny_model(epochs=30, early_stopping=stop, optimizer=ir.Optimizer("sgd", lr=30.0))
    x, y = binary_data()
    per_epoch = []
    trainer = Trainer(model)
    hook = lambda t, logs: per_epoch.append(t.module.ir_state())  # noqa: E731
    trainer.run(from_arrays(model, x, y), from_arrays(model, *binary_data(n=32, seed=4)), progress=False, hooks=[hook])
    assert trainer.stop_reason.startswith("early stopping")
    assert trainer.epoch < 30
    best = trainer.stopper.best_epoch  # type: ignore[union-attr]
    assert best < trainer.epoch
    final = trainer.module.ir_state()
    for name, value in final.items():
        assert np.array_equal(value, per_epoch[best - 1][name])


def test_monitor_without_validation_data_is_a_usage_error() -> None:
    model = tiny_model(early_stopping=ir.EarlyStopping(monitor="val_loss"))
    with pytest.raises(UsageError, match="cannot monitor 'val_loss'"):
        fit(model, *binary_data(), **QUIET)


def test_gradient_clipping_bounds_each_update() -> None:
    clip, lr = 1e-3, 1.0
    model = tiny_model(epochs=1, batch_size=32, gradient_clip=clip, optimizer=ir.Optimizer("sgd", lr=lr), shuffle=False)
    x, y = binary_data(n=32)
    before = Trainer(model).module.ir_state()
    after = fit(model, x, y, **QUIET).weights()
    change = np.sqrt(sum(np.sum((after[k] - before[k]) ** 2) for k in before))
    assert 0 < change <= lr * clip * 1.001  # one step of at most lr * max norm


def test_padded_steps_do_not_train() -> None:
    # Sequence labelling over variable lengths: labels on padded steps must not matter.
    model = tiny_model([ir.GRU(units=4, return_sequences=True), ir.Dense(units=3, activation="softmax")],
                       shape=(None, 2), loss="sparse_categorical_crossentropy", epochs=2, metrics=("accuracy",))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 5, 2)).astype(np.float32)
    lengths = rng.integers(1, 6, size=24)
    labels = rng.integers(0, 3, size=(24, 5))
    padded = np.arange(5)[None, :] >= lengths[:, None]
    other = np.where(padded, (labels + 1) % 3, labels)
    runs = []
    for y in (labels, other):
        data = Dataset(x, y.astype(np.int64), lengths.astype(np.int64), "<test>")
        trainer = Trainer(model)
        trainer.run(data, progress=False)
        runs.append((trainer.module.ir_state(), trainer.history[-1]))
    for name in runs[0][0]:
        assert np.array_equal(runs[0][0][name], runs[1][0][name])
    assert runs[0][1]["accuracy"] == runs[1][1]["accuracy"]


def test_token_ids_with_mask_zero_train() -> None:
    model = tiny_model([ir.Embedding(vocab_size=12, dim=4, mask_zero=True), ir.LSTM(units=4),
                        ir.Dense(units=1, activation="sigmoid")], shape=(None,), dtype="int64", epochs=1)
    rng = np.random.default_rng(0)
    x = rng.integers(1, 12, size=(20, 7))
    x[::2, 4:] = 0
    history = fit(model, x, (x[:, 0] > 5).astype(float), **QUIET)
    assert np.isfinite(history[0]["loss"])


def test_both_or_neither_of_x_and_y() -> None:
    with pytest.raises(UsageError, match="both x and y"):
        fit(replace(tiny_model(), data=ir.Data()), binary_data()[0], **QUIET)
