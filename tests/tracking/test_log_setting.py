"""`training.log` in a spec: the trackers named reach the IR; a wrong name is placed in the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_models import write_spec

from rnnc.cli import main
from rnnc.spec import load_model, resolved_spec


def test_named_trackers_reach_the_ir(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, training={"epochs": 2, "log": ["tensorboard", "mlflow"]})
    assert load_model(spec).training.log == ("tensorboard", "mlflow")
    assert load_model(write_spec(tmp_path)).training.log == ()


def test_a_wrong_name_is_one_placed_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path, training={"epochs": 2, "log": ["mlflow", "tensorbord"]})
    assert main(["check", str(spec)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"{spec}:") and "training.log[1]: expected one of 'tensorboard', 'mlflow', got 'tensorbord'" in lines[0]
    assert "did you mean 'tensorboard'?" in lines[0]


def test_resuming_may_add_a_tracker(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from rnnc_torch.train import fingerprint

    specs = {}
    for name, training in {"plain": {}, "logged": {"log": ["mlflow"]}, "reseeded": {"seed": 4}}.items():
        (tmp_path / name).mkdir()
        specs[name] = resolved_spec(write_spec(tmp_path / name, training={"epochs": 2, "batch_size": 16, "seed": 3, **training}))
    model = load_model(write_spec(tmp_path))
    assert fingerprint(model, specs["plain"]) == fingerprint(model, specs["logged"])
    assert fingerprint(model, specs["plain"]) != fingerprint(model, specs["reseeded"])
