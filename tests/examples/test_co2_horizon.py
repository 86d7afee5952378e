"""examples/co2_horizon: its specs read co2_forecast's files as the README says, and its
one command runs (one epoch each): a table of MAE per step of the horizon for direct,
recursive and seasonal naive, the command line's `--steps` forecast equal to the
rollout, and the picture."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from rnnc.data import load_file
from rnnc.spec import load_model

FOLDER = Path(__file__).resolve().parents[2] / "examples" / "co2_horizon"


def test_the_direct_spec_has_a_target_per_week_and_the_one_step_spec_rolls() -> None:
    direct, one_step = load_model(FOLDER / "spec.yaml"), load_model(FOLDER / "spec_one_step.yaml")
    assert direct.data.csv is not None and direct.data.csv.all_steps and direct.data.csv.horizon == 13
    assert one_step.data.csv is not None and one_step.data.csv.horizon == 1
    assert set(one_step.data.csv.targets) <= set(one_step.data.csv.features or ())
    assert direct.data.test is not None
    test = load_file(direct, direct.data.test)
    assert test.y.shape == (377 - 52 - 13 + 1, 13)  # co2_forecast's 377 test weeks


def test_the_example_runs_one_epoch(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(FOLDER / "run.py"), "--run-dir", str(tmp_path / "runs"), "--plot", str(tmp_path / "f.png"),
         "--set", "training.epochs=1"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("test: 301 forecast origins"))
    assert lines[at + 1].split() == ["step", "direct", "recursive", "seasonal", "naive"]
    steps = [line.split() for line in lines[at + 2 : at + 15]]
    assert [s[0] for s in steps] == [f"+{k}" for k in range(1, 14)] and all(len(s) == 4 for s in steps)
    assert [float(s[3]) for s in steps][0] == 1.683  # seasonal naive needs no training: the README's numbers
    match = re.search(r"largest difference from the rollout above ([\d.e+-]+) ppm", done.stdout)
    assert match and float(match.group(1)) < 1e-5
    assert (tmp_path / "f.png").stat().st_size > 10_000


def test_the_readme_shows_the_picture_and_the_command() -> None:
    readme = (FOLDER / "README.md").read_text()
    assert "python examples/co2_horizon/run.py" in readme and "(forecast.png)" in readme
    assert (FOLDER / "forecast.png").stat().st_size > 10_000
