"""A run's record in MLflow: the flattened spec as parameters, per-epoch metrics, its files.

The store is `MLFLOW_TRACKING_URI` when set, else a file store `mlruns/` beside the run
directory (`runs/mlruns` for `runs/NAME`): mlflow-skinny, the `track` extra, needs
nothing more for it, while an SQLite store needs SQLAlchemy and Alembic (full mlflow
brings them); MLflow 3 keeps its file store in maintenance mode and refuses it unless
`MLFLOW_ALLOW_FILE_STORE=true`, which rnnc sets for that default store only. The
experiment is `MLFLOW_EXPERIMENT_ID`, `MLFLOW_EXPERIMENT_NAME` or the spec's name; with
`RNNC_MLFLOW_PARENT_RUN_ID` (`rnnc tune` sets it) the run is nested under that run, in
its experiment. The run's id is kept in RUN_DIR/mlflow.json, so `--resume` continues the
same MLflow run; metrics are logged with step = epoch, each epoch once.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NOTE

from rnnc.artifacts import atomic_write_text
from rnnc.run_dir import METRICS, MODEL, SPEC

from .records import flatten, numbers

RUN_FILE = "mlflow.json"  # {"tracking_uri": ..., "run_id": ...}: the MLflow run a resumed run continues
PARENT = "RNNC_MLFLOW_PARENT_RUN_ID"
_MAX_VALUE, _BATCH = 6000, 100  # MLflow's longest parameter value; parameters per log_batch call


def tracking_uri(run_dir: Path) -> str:
    """`MLFLOW_TRACKING_URI`, else the file store `mlruns/` beside `run_dir`."""
    if uri := os.environ.get("MLFLOW_TRACKING_URI"):
        return uri
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return (run_dir.resolve().parent / "mlruns").as_uri()


def params(spec: Mapping[str, Any]) -> dict[str, str]:
    """The spec's settings as MLflow parameters; the description is the run's note instead."""
    flat = flatten({k: v for k, v in spec.items() if k != "description"})
    return {key: (value if isinstance(value, str) else json.dumps(value))[:_MAX_VALUE] for key, value in flat.items()}


@contextmanager
def parent_run(folder: Path, name: str, params: Mapping[str, Any] | None = None) -> Iterator[str]:
    """An MLflow run over the runs made in `folder` while it is open (`rnnc tune`'s study):
    in the store and experiment their own runs use (a run directory `folder/NAME` logs to
    `folder/mlruns` by default), its id in RNNC_MLFLOW_PARENT_RUN_ID meanwhile, so each
    of them, in this process or one it starts, is nested under it. Ends FINISHED, FAILED
    on an exception, KILLED on Ctrl-C."""
    client = MlflowClient(tracking_uri=tracking_uri(Path(folder) / name))
    experiment = _experiment(client, name)
    run_id = client.create_run(experiment, run_name=name).info.run_id
    if params:
        items = [Param(key, value) for key, value in {k: str(v)[:_MAX_VALUE] for k, v in params.items()}.items()]
        for start in range(0, len(items), _BATCH):
            client.log_batch(run_id, params=items[start : start + _BATCH], synchronous=True)
    before = os.environ.get(PARENT)
    os.environ[PARENT] = run_id
    status = "FAILED"
    try:
        yield run_id
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        if before is None:
            os.environ.pop(PARENT, None)
        else:
            os.environ[PARENT] = before
        client.set_terminated(run_id, status)


def _experiment(client: MlflowClient, name: str) -> str:
    """`MLFLOW_EXPERIMENT_ID`, or the experiment `MLFLOW_EXPERIMENT_NAME` or `name` (made if new)."""
    if given := os.environ.get("MLFLOW_EXPERIMENT_ID"):
        return given
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or name
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except Exception:  # another process created it meanwhile (parallel trials)
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


class MlflowTracker:
    name = "mlflow"

    def __init__(self, run_dir: Path, spec: Mapping[str, Any]):
        self.run_dir = run_dir
        self.spec = spec
        self.uri = tracking_uri(run_dir)
        self.client = MlflowClient(tracking_uri=self.uri)
        self.run_id = ""
        self._last = 0

    def start(self, history: Sequence[dict[str, Any]]) -> None:
        """Continue the run's MLflow run if it holds exactly the first epochs of `history`,
        else start a new one; then log the epochs it lacks."""
        done = self._continued(history)
        if done is None:
            done = 0
            self.run_id = self._create()
            atomic_write_text(self.run_dir / RUN_FILE, json.dumps({"tracking_uri": self.uri, "run_id": self.run_id}) + "\n")
        self._log_params()
        for logs in history[done:]:
            self.epoch(logs)

    def epoch(self, logs: dict[str, Any]) -> None:
        step = int(logs["epoch"])
        stamp = int(time.time() * 1000)
        metrics = [Metric(key, value, stamp, step) for key, value in numbers(logs).items()]
        self.client.log_batch(self.run_id, metrics=metrics, synchronous=True)
        self._last = step

    def finish(self, status: str, test: Mapping[str, Any] | None) -> None:
        try:
            if test:
                stamp = int(time.time() * 1000)
                metrics = [Metric(f"test_{key}", value, stamp, self._last) for key, value in numbers(test).items()]
                self.client.log_batch(self.run_id, metrics=metrics, synchronous=True)
            for name in (SPEC, METRICS, MODEL):
                if (self.run_dir / name).is_file():
                    self.client.log_artifact(self.run_id, str(self.run_dir / name))
            self._log_plot()
        finally:  # what was logged is kept, and the run says how it ended
            self.client.set_terminated(self.run_id, status)

    def _continued(self, history: Sequence[dict[str, Any]]) -> int | None:
        """How many epochs the MLflow run in RUN_FILE holds when it is this run's to continue."""
        try:
            kept = json.loads((self.run_dir / RUN_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(kept, dict) or kept.get("tracking_uri") != self.uri or not kept.get("run_id"):
            return None
        try:
            logged = [m.step for m in self.client.get_metric_history(kept["run_id"], "loss")]
        except Exception:  # the run is gone from the store
            return None
        if sorted(logged) != [logs["epoch"] for logs in history[: len(logged)]]:
            return None  # another run's epochs: this one starts afresh
        self.run_id = kept["run_id"]
        self.client.update_run(self.run_id, status="RUNNING")
        return len(logged)

    def _create(self) -> str:
        tags = {"rnnc.run_dir": str(self.run_dir.resolve())}
        if description := self.spec.get("description"):
            tags[MLFLOW_RUN_NOTE] = str(description)
        if parent := os.environ.get(PARENT):
            tags[MLFLOW_PARENT_RUN_ID] = parent
            experiment = self.client.get_run(parent).info.experiment_id
        else:
            experiment = _experiment(self.client, str(self.spec.get("name", "rnnc")))
        return self.client.create_run(experiment, tags=tags, run_name=self.run_dir.name).info.run_id

    def _log_params(self) -> None:
        """The spec's parameters the MLflow run lacks: a resumed run may have extended
        `training.epochs`, which MLflow keeps as first logged (see the spec.yaml artifact)."""
        have = self.client.get_run(self.run_id).data.params
        new = [Param(key, value) for key, value in params(self.spec).items() if key not in have]
        for start in range(0, len(new), _BATCH):
            self.client.log_batch(self.run_id, params=new[start : start + _BATCH], synchronous=True)

    def _log_plot(self) -> None:
        """rnnc plot's learning curves as `curves.png`, when matplotlib is installed."""
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return
        from rnnc.cli.plot import read_history, render

        stop = (self.spec.get("training") or {}).get("early_stopping") or {}
        png = render(read_history(self.run_dir), title=str(self.spec.get("name", "")), monitor=stop.get("monitor", "val_loss"))
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "curves.png").write_bytes(png)
            self.client.log_artifact(self.run_id, str(Path(folder) / "curves.png"))
