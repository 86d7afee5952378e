"""One trial: `rnnc train` in a subprocess, its monitored value reported epoch by epoch.

The trial's point is checked as a spec first (an invalid one is pruned with the
validator's reason, no process started). The subprocess writes its own run directory;
its `metrics.jsonl`, rewritten atomically at the end of each epoch, is polled and each
new epoch's monitored value is reported to Optuna; when the pruner says so the process
is ended (SIGTERM: `rnnc train` leaves through its cleanups). The trial's value is the
monitored value of the epoch whose weights the run keeps: the best one when early
stopping restores it on that monitor, else the last.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnc.errors import SpecError
from rnnc.run_dir import METRICS

LOG = "train.log"  # the subprocess's stdout and stderr, in its run directory
POLL_S = 0.2


class TrialPruned(Exception):
    """The trial ends early: its reason is the message."""


class TrialFailed(Exception):
    """`rnnc train` failed: the message is its last line of output."""


class Interrupted(Exception):
    """The study is stopping (Ctrl-C, a signal): the trial is not finished."""


@dataclass
class Trainer:
    """How every trial of a study trains: the spec, fixed overrides and the objective."""

    spec: str
    overrides: Sequence[str]
    monitor: str
    maximize: bool
    keeps_best: bool  # early stopping restores the best epoch on this monitor
    threads: int
    extra: Sequence[str] = ()  # more `rnnc train` arguments (--log mlflow)
    env: dict[str, str] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def check(self, point: Sequence[str]) -> None:
        """Raise `TrialPruned` with the validator's reason when the point makes an invalid spec."""
        from rnnc.spec import load_model

        try:
            load_model(self.spec, [*self.overrides, *point])
        except SpecError as err:
            raise TrialPruned("invalid spec: " + "; ".join(err.lines())) from None

    def run(self, trial: Any, point: Sequence[str], run_dir: Path) -> tuple[float, dict[str, Any]]:
        """Train the point into `run_dir`, reporting to `trial`; its value and what it logged."""
        self.check(point)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / METRICS).unlink(missing_ok=True)  # a stale file would be read as this run's
        command = [sys.executable, "-m", "rnnc", "train", self.spec, "-o", str(run_dir), "--no-progress",
                   "--threads", str(self.threads), *self.extra]
        command += [word for override in (*self.overrides, *point) for word in ("--set", override)]
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads), **self.env}
        values: list[float] = []
        with open(run_dir / LOG, "wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
            try:
                while True:
                    done = process.poll() is not None
                    for epoch, value in self._new_values(run_dir, len(values)):
                        values.append(value)
                        trial.report(value, epoch)
                        if trial.should_prune():
                            raise TrialPruned(f"pruned after epoch {epoch}: {self.monitor} {value:.4g}")
                    if done:
                        break
                    if self.stop.is_set():
                        raise Interrupted()
                    time.sleep(POLL_S)
            finally:
                _end(process)
        said = (run_dir / LOG).read_text(encoding="utf-8", errors="replace").splitlines()
        if process.returncode != 0:
            if self.stop.is_set() or process.returncode in (130, -2):  # Ctrl-C reached it too
                raise Interrupted()
            last = next((line for line in reversed(said) if line.strip()), f"exit status {process.returncode}")
            raise TrialFailed(last.strip())
        if not values:
            raise TrialFailed(f"{run_dir / METRICS} has no '{self.monitor}' (pass --monitor with a logged metric)")
        value = (max(values) if self.maximize else min(values)) if self.keeps_best else values[-1]
        return value, {"epochs": len(values), "test": _test_logs(said)}

    def _new_values(self, run_dir: Path, seen: int) -> list[tuple[int, float]]:
        try:
            lines = (run_dir / METRICS).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines[seen:]:
            logs = json.loads(line)
            if self.monitor not in logs:
                raise TrialFailed(f"the run logs no '{self.monitor}' (it logs {', '.join(k for k in logs if k not in ('epoch', 'time'))}); "
                                  "pass --monitor with one of them")
            value = logs[self.monitor]
            if value is None:  # NaN or inf, written as null
                raise TrialFailed(f"{self.monitor} is not finite at epoch {logs['epoch']}")
            out.append((int(logs["epoch"]), float(value)))
        return out


def _end(process: subprocess.Popen) -> None:
    """Stop the subprocess if it still runs: SIGTERM, then SIGKILL after 10 s."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _test_logs(lines: Sequence[str]) -> dict[str, float] | None:
    """The test set's logs from `rnnc train`'s `test  loss 0.3561  accuracy 0.8793` line."""
    for line in reversed(lines):
        if line.startswith("test  "):
            words = line.split()[1:]
            try:
                return {words[i]: float(words[i + 1]) for i in range(0, len(words) - 1, 2)}
            except ValueError:
                return None
    return None
