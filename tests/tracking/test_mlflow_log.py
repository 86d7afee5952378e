"""`rnnc train --log mlflow`: the run read back with `mlflow.MlflowClient`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from tracked_runs import saved, spec_with_test, train
from tiny_models import write_spec

pytest.importorskip("torch")
pytest.importorskip("mlflow")

from mlflow import MlflowClient  # noqa: E402


def client_of(run: Path) -> tuple[MlflowClient, str]:
    """The client of the store the run logged to, and its MLflow run id (from mlflow.json)."""
    kept = json.loads((run / "mlflow.json").read_text())
    return MlflowClient(tracking_uri=kept["tracking_uri"]), kept["run_id"]


def history_of(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def dotted(data: Any, prefix: str = "") -> dict[str, str]:
    """The spec flattened as the test expects MLflow's parameters (written here, not rnnc's)."""
    if isinstance(data, dict):
        return {k: v for key, value in data.items() for k, v in dotted(value, f"{prefix}{key}.").items()}
    if isinstance(data, list):
        return {k: v for i, value in enumerate(data) for k, v in dotted(value, f"{prefix}{i}.").items()}
    return {prefix[:-1]: data if isinstance(data, str) else json.dumps(data)}


def test_a_run_in_the_default_store(tmp_path: Path) -> None:
    spec = spec_with_test(tmp_path)
    run = tmp_path / "runs" / "tiny"
    assert train(spec, "-o", run, "--log", "mlflow") == 0
    client, run_id = client_of(run)
    assert client.tracking_uri == (tmp_path / "runs" / "mlruns").as_uri()
    logged = client.get_run(run_id)
    assert logged.info.status == "FINISHED" and logged.info.run_name == "tiny"
    assert client.get_experiment(logged.info.experiment_id).name == "tiny"  # the spec's name
    history = saved(run)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"):
        assert history_of(client, run_id, key) == [(logs["epoch"], logs[key]) for logs in history], key
    assert logged.data.params == dotted(yaml.safe_load((run / "spec.yaml").read_text()))
    assert logged.data.params["layers.0.units"] == "8" and logged.data.params["data.test"] == str(tmp_path / "test.npz")
    assert set(logged.data.metrics) >= {"test_loss", "test_accuracy"}
    assert [m.step for m in client.get_metric_history(run_id, "test_loss")] == [3]
    assert {a.path for a in client.list_artifacts(run_id)} == {"spec.yaml", "metrics.jsonl", "model.onnx", "curves.png"}
    png = Path(client.download_artifacts(run_id, "curves.png", str(tmp_path)))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tracking_uri_and_parent_run_are_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = (tmp_path / "elsewhere").as_uri()
    client = MlflowClient(tracking_uri=store)
    study = client.create_experiment("study")
    parent = client.create_run(study, run_name="tune").info.run_id
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("RNNC_MLFLOW_PARENT_RUN_ID", parent)
    spec = write_spec(tmp_path)
    assert train(spec, "-o", tmp_path / "trial-0", "--log", "mlflow") == 0
    [child] = client.search_runs([study], filter_string=f"tags.mlflow.parentRunId = '{parent}'")
    assert child.info.run_id == json.loads((tmp_path / "trial-0" / "mlflow.json").read_text())["run_id"]
    assert not (tmp_path / "mlruns").exists()


def test_resume_continues_the_same_run(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, training={"epochs": 2, "batch_size": 16, "seed": 3})
    run = tmp_path / "run"
    assert train(spec, "-o", run, "--log", "mlflow") == 0
    _, first = client_of(run)
    assert train(spec, "-o", run, "--resume", "--set", "training.epochs=4", "--log", "mlflow") == 0
    client, run_id = client_of(run)
    assert run_id == first
    assert history_of(client, run_id, "loss") == [(logs["epoch"], logs["loss"]) for logs in saved(run)]
    assert [step for step, _ in history_of(client, run_id, "loss")] == [1, 2, 3, 4]
    logged = client.get_run(run_id)
    assert logged.info.status == "FINISHED"
    assert logged.data.params["training.epochs"] == "2"  # MLflow keeps a parameter as first logged


def test_a_fresh_run_is_a_new_mlflow_run(tmp_path: Path) -> None:
    spec = write_spec(tmp_path)
    run = tmp_path / "run"
    assert train(spec, "-o", run, "--log", "mlflow") == 0
    _, first = client_of(run)
    assert train(spec, "-o", run, "--log", "mlflow") == 0
    client, second = client_of(run)
    assert second != first
    assert [step for step, _ in history_of(client, second, "loss")] == [1, 2]


def test_an_interrupted_run_is_killed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rnnc.tracking.mlflow_run import MlflowTracker

    logged = MlflowTracker.epoch

    def interrupt_after_two(self: MlflowTracker, logs: dict[str, Any]) -> None:
        logged(self, logs)
        if logs["epoch"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(MlflowTracker, "epoch", interrupt_after_two)
    spec = write_spec(tmp_path, training={"epochs": 4, "batch_size": 16, "seed": 3})
    assert train(spec, "-o", tmp_path / "run", "--log", "mlflow") == 130
    client, run_id = client_of(tmp_path / "run")
    assert client.get_run(run_id).info.status == "KILLED"
    assert [step for step, _ in history_of(client, run_id, "loss")] == [1, 2]


def test_a_diverged_run_failed(tmp_path: Path) -> None:
    # Epoch 1 trains at lr 0.01; from epoch 2 the step schedule makes it 1e10 (as in tests/train).
    spec = write_spec(
        tmp_path,
        layers=[{"type": "simple_rnn", "units": 4, "activation": "relu"}, {"type": "dense", "units": 1}],
        loss="mse", metrics=[], optimizer={"type": "sgd", "lr": 0.01},
        training={"epochs": 4, "batch_size": 16, "lr_schedule": {"type": "step", "step_size": 1, "gamma": 1e12}},
    )
    assert train(spec, "-o", tmp_path / "run", "--log", "mlflow") == 1
    client, run_id = client_of(tmp_path / "run")
    assert client.get_run(run_id).info.status == "FAILED"
    assert [step for step, _ in history_of(client, run_id, "loss")] == [1]


def test_runs_made_in_a_parent_run_are_nested_under_it(tmp_path: Path) -> None:
    import os

    from rnnc.tracking.mlflow_run import PARENT, parent_run

    spec = write_spec(tmp_path)
    with parent_run(tmp_path / "study", "study", {"trials": 2}) as parent:
        assert os.environ[PARENT] == parent
        for trial in ("trial-0", "trial-1"):
            assert train(spec, "-o", tmp_path / "study" / trial, "--log", "mlflow") == 0
    assert PARENT not in os.environ
    client = MlflowClient(tracking_uri=(tmp_path / "study" / "mlruns").as_uri())
    study = client.get_run(parent)
    assert study.info.status == "FINISHED" and study.data.params == {"trials": "2"}
    children = client.search_runs([study.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent}'")
    assert sorted(run.info.run_name for run in children) == ["trial-0", "trial-1"]
