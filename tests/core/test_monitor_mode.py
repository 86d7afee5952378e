"""Early stopping's `mode: auto`: accuracy-like logs are maximised, losses and errors
minimised, for a v1 chain's names and a graph output's `<output>_<metric>` alike."""

from __future__ import annotations

import pytest

from rnnc.build import monitor_mode


@pytest.mark.parametrize(("monitor", "mode"), [
    ("val_loss", "min"), ("loss", "min"), ("val_accuracy", "max"), ("auc", "max"), ("val_mae", "min"),
    ("val_answer_accuracy", "max"), ("kind_f1", "max"), ("val_level_loss", "min"), ("val_level_rmse", "min"),
    ("val_lossy_auc", "max"),
])
def test_mode_follows_the_metric(monitor: str, mode: str) -> None:
    assert monitor_mode(monitor) == mode
