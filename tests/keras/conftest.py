"""The Keras models tests/keras/ imports, built once per session in the Keras
environment (tests/keras/make_env.sh); without it the tests that need them skip with
the command that builds it. The steps from a file to rnnc's predictions: keras_steps."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
KERAS_ENV = Path(os.environ.get("RNNC_KERAS_ENV", Path.home() / ".cache" / "rnnc-keras-env"))
KERAS_PYTHON = KERAS_ENV / "bin" / "python"
BUILD_COMMAND = "bash tests/keras/make_env.sh"


@pytest.fixture(scope="session")
def keras_cases(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """(folder, cases.json) of every model tests/keras/keras_models.py builds."""
    if not KERAS_PYTHON.exists():
        pytest.skip(f"no Keras environment at {KERAS_ENV}: build it with `{BUILD_COMMAND}`")
    out = tmp_path_factory.mktemp("keras_models")
    env = {**os.environ, "KERAS_BACKEND": "torch", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([str(KERAS_PYTHON), str(HERE / "keras_models.py"), str(out)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, json.loads((out / "cases.json").read_text())
