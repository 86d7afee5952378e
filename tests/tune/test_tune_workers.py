"""Two `rnnc tune` worker processes share one study through a journal file: N trials in all, each run once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tiny_models import write_spec

pytest.importorskip("torch")
optuna = pytest.importorskip("optuna")

SPACE = "layers.0.units: {int: [4, 12]}\noptimizer.lr: {float: [1.0e-3, 3.0e-2], log: true}\npruner: none\nseed: 1\n"


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    spec = write_spec(tmp_path, n=64, training={"epochs": 1, "batch_size": 16, "seed": 3})
    (tmp_path / "space.yaml").write_text(SPACE)
    return spec, tmp_path / "space.yaml"


def test_two_workers_share_one_journal(tmp_path: Path) -> None:
    spec, space = _setup(tmp_path)
    journal = tmp_path / "study.journal"
    command = [sys.executable, "-m", "rnnc", "tune", str(spec), "--space", str(space), "--trials", "4",
               "--storage", str(journal), "--resume", "--no-progress"]
    workers = [subprocess.Popen([*command, "-o", str(tmp_path / f"w{i}")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for i in range(2)]
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err.decode()
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name="tiny", storage=optuna.storages.JournalStorage(JournalFileBackend(str(journal))))
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3] and all(t.state.name == "COMPLETE" for t in trials)
    ran = sorted(run.name for run in tmp_path.glob("w*/trials/*") if (run / "metrics.jsonl").exists())
    assert ran == ["0000", "0001", "0002", "0003"]  # each trial trained once, by one worker or the other
