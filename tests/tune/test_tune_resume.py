"""`--resume` after a worker died: its unfinished trials fail as interrupted and their points are queued once."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")


def test_a_dead_workers_trial_is_queued_again_once(tmp_path: Path) -> None:
    from rnnc.tune.space import Space
    from rnnc.tune.study import counted, open_storage, open_study, requeue_interrupted

    storage = open_storage(None, tmp_path)
    space = Space("space.yaml", ())
    study = open_study(storage, "s", {"direction": "minimize"}, space, resume=False)
    trial = study.ask()
    trial.suggest_int("layers.0.units", 4, 12)
    trial.set_user_attr("worker", f"{socket.gethostname()}:{2**22 + 1}")  # above Linux's pid limit: no such process
    point = dict(study.trials[0].params)
    assert requeue_interrupted(study, storage) == 1
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "WAITING"]
    assert trials[0].user_attrs["interrupted"] is True and trials[1].system_attrs["fixed_params"] == point
    assert counted(study) == 0  # neither counts toward --trials: the queued one runs next
    assert requeue_interrupted(study, storage) == 0  # queued once, however often resumed
    again = open_study(storage, "s", {"direction": "minimize"}, space, resume=True)
    assert again.ask().suggest_int("layers.0.units", 4, 12) == point["layers.0.units"]
