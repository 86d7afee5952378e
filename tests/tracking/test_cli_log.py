"""`rnnc train --log`: names, a missing extra, a tracker that fails, the resume command."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from tracked_runs import saved, train
from tiny_models import write_spec

from rnnc.tracking import parse_names


@pytest.mark.parametrize(("values", "names"), [
    (["tensorboard"], ("tensorboard",)),
    (["mlflow,tensorboard"], ("mlflow", "tensorboard")),
    (["tensorboard", "mlflow, tensorboard"], ("tensorboard", "mlflow")),
    ([], ()),
])
def test_names(values: list[str], names: tuple[str, ...]) -> None:
    assert parse_names(values) == names


def test_a_wrong_name_is_one_line_and_nothing_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path)
    assert train(spec, "-o", tmp_path / "run", "--log", "tensorbord") == 2
    assert capsys.readouterr().err.splitlines() == [
        "--log tensorbord: unknown tracker (did you mean 'tensorboard'?); rnnc logs to: tensorboard, mlflow"
    ]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("name", "module"), [
    ("mlflow", "mlflow"), ("tensorboard", "tensorboard.summary.writer.event_file_writer"),
])
@pytest.mark.parametrize("asked", ["flag", "spec"])
def test_a_missing_extra_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, name: str, module: str, asked: str
) -> None:
    pytest.importorskip("torch")
    monkeypatch.setitem(sys.modules, module, None)  # `import` of it raises ImportError
    if asked == "flag":
        spec, flags = write_spec(tmp_path), ["--log", name]
    else:
        spec, flags = write_spec(tmp_path, training={"epochs": 2, "log": [name]}), []
    assert train(spec, "-o", tmp_path / "run", *flags) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"logging to {name} needs the track extra: pip install 'rnnc[track]' ({name} is not installed)"
    ]
    assert not (tmp_path / "run").exists()


def test_a_failing_tracker_says_so_once_and_the_run_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("tensorboard")
    from rnnc.tracking.tensorboard_events import TensorBoardTracker

    def refuse(self: TensorBoardTracker, logs: dict[str, Any]) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(TensorBoardTracker, "epoch", refuse)
    spec = write_spec(tmp_path, training={"epochs": 3, "batch_size": 16, "seed": 3})
    assert train(spec, "-o", tmp_path / "run", "--log", "tensorboard") == 0
    err = capsys.readouterr().err
    assert err.count("--log tensorboard: OSError: No space left on device; no longer logging to tensorboard") == 1
    assert [logs["epoch"] for logs in saved(tmp_path / "run")] == [1, 2, 3]


def test_the_resume_command_keeps_logging(tmp_path: Path) -> None:
    from rnnc.cli import build_parser
    from rnnc.cli.train import resume_command

    args = build_parser().parse_args(["train", "s.yaml", "--log", "mlflow,tensorboard"])
    assert resume_command(args, Path("runs/s")) == "rnnc train s.yaml -o runs/s --resume --log mlflow --log tensorboard"


def test_the_spec_alone_can_ask(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("tensorboard")
    spec = write_spec(tmp_path, training={"epochs": 2, "batch_size": 16, "seed": 3, "log": ["tensorboard"]})
    assert train(spec, "-o", tmp_path / "run") == 0
    assert [p.name for p in sorted((tmp_path / "run" / "tensorboard").iterdir())] == ["train", "validation"]


def test_a_tracker_that_cannot_start_leaves_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nosuchscheme://nowhere")
    spec = write_spec(tmp_path, training={"epochs": 2, "batch_size": 16, "seed": 3})
    assert train(spec, "-o", tmp_path / "run", "--log", "mlflow,tensorboard") == 0
    [line] = [line for line in capsys.readouterr().err.splitlines() if "--log" in line]
    assert line.startswith("rnnc train: --log mlflow: ") and line.endswith("; no longer logging to mlflow")
    assert not (tmp_path / "run" / "mlflow.json").exists()
    assert (tmp_path / "run" / "tensorboard" / "validation").is_dir()


def test_a_backend_without_on_epoch_is_told_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("tensorboard")

    class OlderBackend:  # a third party's, written before on_epoch
        name, capabilities = "older", frozenset({"train"})
        trained = False

        def train(self, model: Any, run_dir: Path, *, spec: Any, resume: bool, device: str, progress: bool,
                  threads: int | None = None) -> None:
            OlderBackend.trained = True

        def writes_run_dir(self) -> bool:
            return True

    from rnnc import plugins
    from rnnc.cli.train import _takes_on_epoch

    real = plugins.get_backend
    monkeypatch.setattr(plugins, "get_backend", lambda name, capability=None: OlderBackend() if name == "torch" else real(name, capability))
    spec = write_spec(tmp_path)
    assert train(spec, "-o", tmp_path / "run", "--log", "tensorboard") == 2
    assert capsys.readouterr().err.splitlines() == [
        "--log tensorboard: the 'torch' training backend takes no on_epoch callback, so nothing could be recorded; "
        "drop --log and training.log, or train with the torch backend"
    ]
    assert not OlderBackend.trained and not (tmp_path / "run").exists()
    assert not _takes_on_epoch(OlderBackend())  # type: ignore[arg-type]
    assert _takes_on_epoch(real("torch", "train"))
