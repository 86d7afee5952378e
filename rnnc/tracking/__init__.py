"""Experiment tracking for `rnnc train --log tensorboard|mlflow` (and `training.log`).

A `Tracking` holds the trackers of one run and is what the training backend's
`on_epoch` calls (`rnnc.plugins.EpochCallback`): each epoch's logs, once the epoch is
saved in the run directory. Each tracker starts at the first epoch it is given, so a
run refused for bad input records nothing, and it then brings its record level with
`metrics.jsonl` (a resumed run appends the epochs it lacks, never one twice). At the
end, `finish` records the test result and the run's files and closes. TensorBoard
event files go under RUN_DIR/tensorboard (`tensorboard_events`), an MLflow run to
`MLFLOW_TRACKING_URI` or a file store beside the run directory (`mlflow_run`). Both
libraries are the `track` extra, imported only here and only when asked for; the core
imports no torch. A tracker that fails while the run trains says so in one line and
stops recording; the run goes on.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from rnnc.errors import UsageError, did_you_mean
from rnnc.ir import LOGGERS

from .records import saved_history

EXTRA = "pip install 'rnnc[track]'"
# The module each tracker cannot work without (tensorboard's writer needs no TensorFlow).
_NEEDS = {"tensorboard": "tensorboard.summary.writer.event_file_writer", "mlflow": "mlflow"}
STATUSES = ("FINISHED", "FAILED", "KILLED")  # how a run ended, in MLflow's words


class Tracker(Protocol):
    """One tracker of a run: started with the epochs saved so far, then one epoch at a time."""

    name: str

    def start(self, history: Sequence[dict[str, Any]]) -> None: ...

    def epoch(self, logs: dict[str, Any]) -> None: ...

    def finish(self, status: str, test: Mapping[str, Any] | None) -> None: ...


def parse_names(values: Iterable[str]) -> tuple[str, ...]:
    """The trackers of `--log` values (repeated or comma-separated), in order, each once;
    a name rnnc does not know is a `UsageError` with the names it does."""
    names: list[str] = []
    for value in values:
        for name in filter(None, (part.strip() for part in value.split(","))):
            if name not in LOGGERS:
                raise UsageError(f"--log {name}: unknown tracker{did_you_mean(name, LOGGERS)}; rnnc logs to: {', '.join(LOGGERS)}")
            if name not in names:
                names.append(name)
    return tuple(names)


def require(names: Iterable[str]) -> None:
    """Check that each tracker's library imports; else one `UsageError` line naming the extra."""
    for name in names:
        try:
            importlib.import_module(_NEEDS[name])
        except ImportError:
            raise UsageError(f"logging to {name} needs the track extra: {EXTRA} ({name} is not installed)") from None


class Tracking:
    """The trackers of one run (`names`), recording into or beside `run_dir`; `spec` is
    the resolved spec the run saved. `on_epoch` is the training backend's callback."""

    def __init__(self, names: Sequence[str], run_dir: Path, spec: Mapping[str, Any]):
        require(names)
        self.names = tuple(names)
        self.run_dir = Path(run_dir)
        self.spec = dict(spec)
        self._trackers: list[Tracker] | None = None  # made at the first epoch

    def __bool__(self) -> bool:
        return bool(self.names)

    def on_epoch(self, logs: dict[str, Any]) -> None:
        if self._trackers is not None:
            self._each("epoch", logs)
            return
        self._trackers = []
        try:
            history = [entry for entry in saved_history(self.run_dir) if entry["epoch"] <= logs["epoch"]]
        except (OSError, ValueError, KeyError, TypeError):  # a backend's metrics.jsonl that is not rnnc's
            history = []
        for name in self.names:
            try:
                tracker = self._make(name)
                tracker.start(history or [logs])
            except Exception as err:  # a tracker's failure must not end a training run
                self._stopped(name, err)
            else:
                self._trackers.append(tracker)

    def finish(self, status: str, test: Mapping[str, Any] | None = None) -> None:
        """End each tracker's record: `status` one of STATUSES; `test` the test set's logs."""
        if self._trackers is not None:
            self._each("finish", status, test)
            self._trackers = []

    def _make(self, name: str) -> Tracker:
        if name == "tensorboard":
            from .tensorboard_events import TensorBoardTracker

            return TensorBoardTracker(self.run_dir, self.spec)
        from .mlflow_run import MlflowTracker

        return MlflowTracker(self.run_dir, self.spec)

    def _each(self, method: str, *args: Any) -> None:
        for tracker in list(self._trackers or ()):
            try:
                getattr(tracker, method)(*args)
            except Exception as err:  # a tracker's failure must not end a training run
                self._stopped(tracker.name, err)
                self._trackers.remove(tracker)  # type: ignore[union-attr]

    @staticmethod
    def _stopped(name: str, err: Exception) -> None:
        said = " ".join(str(err).split())  # one line, whatever the library's message holds
        print(f"rnnc train: --log {name}: {type(err).__name__}: {said}; no longer logging to {name}", file=sys.stderr)
