"""`rnnc train --log tensorboard`: event files read back with TensorBoard's own EventAccumulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from tracked_runs import f32, read, saved, spec_with_test, train
from tiny_models import write_spec

pytest.importorskip("torch")
pytest.importorskip("tensorboard")

from rnnc.cli import main  # noqa: E402


def expected(history: list[dict[str, Any]], prefix: str) -> dict[str, list[tuple[int, Any]]]:
    keys = [k for k in history[0] if k != "epoch" and k.startswith("val_") == (prefix == "val_")]
    return {k.removeprefix(prefix): [(logs["epoch"], f32(logs[k])) for logs in history] for k in keys}


def test_each_epoch_as_in_metrics_jsonl(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, training={"epochs": 3, "batch_size": 16, "seed": 3})
    run = tmp_path / "runs" / "tiny"
    assert train(spec, "-o", run, "--log", "tensorboard") == 0
    history = saved(run)
    train_run, validation = read(run / "tensorboard" / "train"), read(run / "tensorboard" / "validation")
    text = train_run.pop("spec")
    assert train_run == expected(history, "")  # loss, accuracy, lr, time: exact, as float32
    assert set(train_run) == {"loss", "accuracy", "lr", "time"}
    assert validation == expected(history, "val_")
    assert set(validation) == {"loss", "accuracy"}
    [(step, markdown)] = text
    assert step == 0 and markdown.decode().startswith("```yaml\n")
    assert yaml.safe_load(markdown.decode().strip("`").removeprefix("yaml\n")) == yaml.safe_load((run / "spec.yaml").read_text())


def test_resume_appends_each_epoch_once(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, training={"epochs": 2, "batch_size": 16, "seed": 3})
    run = tmp_path / "run"
    assert train(spec, "-o", run, "--log", "tensorboard") == 0
    assert train(spec, "-o", run, "--resume", "--set", "training.epochs=4", "--log", "tensorboard") == 0
    history = saved(run)
    assert [logs["epoch"] for logs in history] == [1, 2, 3, 4]
    logged = read(run / "tensorboard" / "train")
    assert logged["loss"] == [(logs["epoch"], f32(logs["loss"])) for logs in history]
    assert len(logged["spec"]) == 1
    assert len(list((run / "tensorboard" / "train").iterdir())) == 2  # one event file per process


def test_a_run_resumed_with_log_gets_its_earlier_epochs(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, training={"epochs": 2, "batch_size": 16, "seed": 3})
    run = tmp_path / "run"
    assert train(spec, "-o", run) == 0
    assert not (run / "tensorboard").exists()
    assert train(spec, "-o", run, "--resume", "--set", "training.epochs=3", "--log", "tensorboard") == 0
    assert read(run / "tensorboard" / "train")["loss"] == [(logs["epoch"], f32(logs["loss"])) for logs in saved(run)]


def test_a_fresh_run_replaces_an_earlier_runs_events(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, training={"epochs": 3, "batch_size": 16, "seed": 3})
    run = tmp_path / "run"
    assert train(spec, "-o", run, "--log", "tensorboard") == 0
    assert train(spec, "-o", run, "--set", "training.epochs=2", "--set", "training.seed=9", "--log", "tensorboard") == 0
    assert read(run / "tensorboard" / "train")["loss"] == [(logs["epoch"], f32(logs["loss"])) for logs in saved(run)]


def test_the_test_result_at_the_last_epoch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = spec_with_test(tmp_path)
    run = tmp_path / "run"
    assert train(spec, "-o", run, "--log", "tensorboard") == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), str(tmp_path / "test.npz"), "--json"]) == 0  # onnxruntime, no torch
    reference = json.loads(capsys.readouterr().out)
    logged = read(run / "tensorboard" / "test")
    assert set(logged) == {"loss", "accuracy"}
    [(step, loss)] = logged["loss"]
    assert step == 3
    assert loss == pytest.approx(reference["loss"], abs=1e-5)
    assert logged["accuracy"][0][1] == f32(reference["accuracy"])
