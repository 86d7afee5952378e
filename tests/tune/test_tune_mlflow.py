"""`rnnc tune --log mlflow`: one MLflow run for the study, each trial's run nested under it."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_models import write_spec

from rnnc.cli import main

pytest.importorskip("torch")
pytest.importorskip("optuna")
mlflow = pytest.importorskip("mlflow")


def test_trials_nest_under_the_study_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("RNNC_MLFLOW_PARENT_RUN_ID", raising=False)
    spec = write_spec(tmp_path, n=64, training={"epochs": 1, "batch_size": 16, "seed": 3})
    space = tmp_path / "space.yaml"
    space.write_text("layers.0.units: {int: [4, 12]}\npruner: none\nseed: 1\n")
    out = tmp_path / "study"
    assert main(["tune", str(spec), "--space", str(space), "--trials", "2", "-o", str(out), "--log", "mlflow", "--no-progress"]) == 0
    client = mlflow.MlflowClient(tracking_uri=(out / "trials" / "mlruns").as_uri())
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].data.params["layers.0.units"] == "int from 4 to 12"
    assert len(children) == 2 and {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert parents[0].info.status == "FINISHED"
