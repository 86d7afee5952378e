"""Tracking tests log to stores in their own temporary folders only."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_outside_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test logs to a tracking server of the machine's, nor nests under a real run."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "RNNC_MLFLOW_PARENT_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # set by rnnc for its default store; kept out of os.environ after
