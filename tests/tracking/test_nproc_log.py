"""`rnnc train --nproc 2 --log ...`: the writing worker alone records the run, once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tracked_runs import f32, read, saved
from tiny_models import write_spec

pytest.importorskip("torch")
pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")

from mlflow import MlflowClient  # noqa: E402


def test_two_workers_log_one_run(tmp_path: Path) -> None:
    spec = write_spec(tmp_path)
    run = tmp_path / "runs" / "tiny"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RNNC_DIST_TIMEOUT": "60", "MLFLOW_ALLOW_FILE_STORE": "true"}
    done = subprocess.run(
        [sys.executable, "-m", "rnnc", "train", str(spec), "-o", str(run), "--nproc", "2", "--log", "tensorboard",
         "--log", "mlflow", "--no-progress", "--device", "cpu"],
        capture_output=True, text=True, timeout=180, env=env,
    )
    assert done.returncode == 0, done.stderr
    history = saved(run)
    assert read(run / "tensorboard" / "train")["loss"] == [(logs["epoch"], f32(logs["loss"])) for logs in history]
    assert len(list((run / "tensorboard" / "train").iterdir())) == 1  # one writer: rank 0's
    client = MlflowClient(tracking_uri=(tmp_path / "runs" / "mlruns").as_uri())
    [experiment] = [e for e in client.search_experiments() if e.name == "tiny"]
    [logged] = client.search_runs([experiment.experiment_id])
    assert logged.info.run_id == json.loads((run / "mlflow.json").read_text())["run_id"]
    assert sorted((m.step, m.value) for m in client.get_metric_history(logged.info.run_id, "val_loss")) == [
        (logs["epoch"], logs["val_loss"]) for logs in history
    ]
