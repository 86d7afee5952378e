"""`rnnc init --task ...`: commented starter specs that `rnnc check` accepts once their
data exists (the starter names its data files; the user brings them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rnnc.cli import main
from rnnc.cli.init import TASKS
from rnnc.loader import load_file
from rnnc.spec import load_model

SCHEMA = Path(__file__).resolve().parents[2] / "rnnc" / "schema" / "spec-v1.json"


def make_data(task: str, folder: Path) -> None:
    """Dummy data files where each starter says its data goes, in the format it says."""
    data = folder / "data"
    data.mkdir()
    if task == "classification":
        np.savez(data / "train.npz", x=np.zeros((10, 20, 3), np.float32), y=np.arange(10) % 4)
    elif task == "forecasting":
        for name in ("train.csv", "val.csv"):
            (data / name).write_text("date,value\n" + "".join(f"2020-01-{d:02d},{d / 10}\n" for d in range(1, 31)))
    else:
        (data / "train.csv").write_text("text,label\n" + "".join(f"text number {i},{'abc'[i % 3]}\n" for i in range(12)))


@pytest.mark.parametrize("task", TASKS)
def test_the_starter_passes_check_once_its_data_exists(task: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "my.yaml"
    assert main(["init", "--task", task, "-o", str(spec)]) == 0
    assert f"wrote {spec}; next: put your data in data/" in capsys.readouterr().err
    assert main(["check", str(spec)]) == 2  # the data it names is the user's to bring
    assert "no such file" in capsys.readouterr().err
    make_data(task, tmp_path)
    assert main(["check", str(spec)]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("task", TASKS)
def test_the_starter_trains_on_its_data(task: str, tmp_path: Path) -> None:
    """Not only valid: its data format is the one the comments describe."""
    from rnnc.data import load_training_data

    spec = tmp_path / "my.yaml"
    main(["init", "--task", task, "-o", str(spec)])
    make_data(task, tmp_path)
    data = load_training_data(load_model(spec))
    assert len(data.train) > 0


@pytest.mark.parametrize("task", TASKS)
def test_the_first_line_points_editors_at_the_installed_schema(task: str, tmp_path: Path) -> None:
    spec = tmp_path / "my.yaml"
    main(["init", "--task", task, "-o", str(spec)])
    first = spec.read_text().splitlines()[0]
    assert first == f"# yaml-language-server: $schema={SCHEMA.as_uri()}"
    assert load_file(spec).problems == []
    assert f"rnnc check {spec}" in spec.read_text()  # the comments name the file as written


def test_init_never_overwrites_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "mine.yaml"
    spec.write_text("my own work\n")
    assert main(["init", "--task", "text", "-o", str(spec)]) == 2
    assert capsys.readouterr().err == f"{spec}: exists; pass --force to overwrite it, or -o another file\n"
    assert spec.read_text() == "my own work\n"
    assert main(["init", "--task", "text", "-o", str(spec), "--force"]) == 0
    assert "name: my-text-classifier" in spec.read_text()


def test_default_file_is_named_after_the_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init", "--task", "forecasting"]) == 0
    assert (tmp_path / "forecasting.yaml").is_file()


def test_an_unknown_task_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["init", "--task", "poetry"])
    assert exited.value.code == 2
    assert "invalid choice: 'poetry'" in capsys.readouterr().err
