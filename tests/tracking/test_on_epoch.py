"""The training backend's `on_epoch` callback: each epoch's logs, once the epoch is saved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tiny_models import binary_data, write_spec

pytest.importorskip("torch")

from rnnc.plugins import get_backend  # noqa: E402
from rnnc.spec import load_model, resolved_spec  # noqa: E402


def _lines(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_called_with_each_epochs_logs_after_metrics_are_written(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, training={"epochs": 3, "batch_size": 16, "seed": 3})
    run = tmp_path / "run"
    seen: list[dict[str, Any]] = []

    def listen(logs: dict[str, Any]) -> None:
        assert _lines(run)[-1] == logs  # metrics.jsonl already holds this epoch
        assert (run / "weights.safetensors").exists() and (run / "checkpoint.pt").exists()
        logs["loss"] = -1.0  # a copy: the run's own history is untouched
        seen.append(logs)

    history = get_backend("torch", "train").train(
        load_model(spec), run, spec=resolved_spec(spec), resume=False, device="cpu", progress=False, on_epoch=listen
    )
    assert [logs["epoch"] for logs in seen] == [1, 2, 3]
    assert [logs["loss"] for logs in _lines(run)] == [logs["loss"] for logs in history]
    assert all(logs["loss"] > 0 for logs in history)
    assert history.test is None


def test_what_it_raises_ends_the_run_with_that_epoch_kept(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, training={"epochs": 5, "batch_size": 16, "seed": 3})
    run = tmp_path / "run"

    class Pruned(Exception):
        pass

    def prune(logs: dict[str, Any]) -> None:
        if logs["epoch"] == 2:
            raise Pruned

    with pytest.raises(Pruned):
        get_backend("torch", "train").train(
            load_model(spec), run, spec=resolved_spec(spec), resume=False, device="cpu", progress=False, on_epoch=prune
        )
    assert [logs["epoch"] for logs in _lines(run)] == [1, 2]


def test_history_carries_the_test_logs(tmp_path: Path) -> None:
    x, y = binary_data(n=40, seed=5)
    np.savez(tmp_path / "test.npz", x=x, y=y)
    spec = write_spec(tmp_path, data={"train": "train.npz", "validation": "val.npz", "test": "test.npz"})
    history = get_backend("torch", "train").train(
        load_model(spec), tmp_path / "run", spec=resolved_spec(spec), resume=False, device="cpu", progress=False
    )
    assert history.test is not None and set(history.test) == {"loss", "accuracy"}
    assert 0 < history.test["loss"] < 5 and 0 <= history.test["accuracy"] <= 1
