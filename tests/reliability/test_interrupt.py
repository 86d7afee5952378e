"""Ctrl-C during `rnnc train`: the last completed epoch is kept, as `model.onnx` too.

An interrupted run exits 130, leaves `model.onnx` exported from the weights of its last
completed epoch (so a long run stopped early still deploys), and its last line is the
exact command that continues it; that command ends with the weights of a run never
interrupted. Shown in-process (an epoch that raises KeyboardInterrupt) and with a real
SIGINT sent to a child process once the first epoch is saved.
"""

from __future__ import annotations

import shlex
import signal
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
from test_resume import rnnc  # noqa: E402
from tiny_models import binary_data, write_spec  # noqa: E402

from rnnc.artifacts import load_weights, load_weights_metadata  # noqa: E402
from rnnc.cli import main  # noqa: E402
from rnnc_torch.trainer import Trainer  # noqa: E402

RESUME = "rnnc train: interrupted; continue the run with: "


def predictions(model: Path) -> np.ndarray:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return session.run(["y"], {"x": binary_data(n=20, seed=4)[0]})[0]


def test_ctrl_c_keeps_the_last_epoch_as_model_onnx_and_says_how_to_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, run = write_spec(tmp_path), tmp_path / "run"
    epoch_of = Trainer.train_epoch

    def interrupted_at_3(self: Trainer, epoch: int, *args, **kwargs):  # type: ignore[no-untyped-def]
        if epoch == 3:
            raise KeyboardInterrupt
        return epoch_of(self, epoch, *args, **kwargs)

    monkeypatch.setattr(Trainer, "train_epoch", interrupted_at_3)
    argv = ["train", str(spec), "-o", str(run), "--set", "training.epochs=4", "--device", "cpu", "--no-progress"]
    assert main(argv) == 130
    err = capsys.readouterr().err.splitlines()
    assert err[-2] == f"interrupted: {run}/model.onnx holds the weights of epoch 2"
    assert err[-1] == RESUME + f"rnnc train {spec} -o {run} --resume --set training.epochs=4 --device cpu"
    assert load_weights_metadata(run / "weights.safetensors")["epoch"] == "2"
    assert main(["compile", str(run / "spec.yaml"), "--weights", str(run / "weights.safetensors"), "-o", str(tmp_path / "two.onnx")]) == 0
    np.testing.assert_array_equal(predictions(run / "model.onnx"), predictions(tmp_path / "two.onnx"))

    monkeypatch.undo()
    assert main([*shlex.split(err[-1].removeprefix(RESUME))[1:], "--no-progress"]) == 0
    assert main([*argv[:3], str(tmp_path / "whole"), *argv[4:]]) == 0
    resumed, whole = load_weights(run / "weights.safetensors"), load_weights(tmp_path / "whole" / "weights.safetensors")
    assert resumed.keys() == whole.keys() and all(np.array_equal(resumed[k], whole[k]) for k in whole)


def test_ctrl_c_before_the_first_epoch_ends_keeps_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(self: Trainer, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "train_epoch", interrupted)
    spec, run = write_spec(tmp_path), tmp_path / "run"
    assert main(["train", str(spec), "-o", str(run), "--device", "cpu", "--no-progress"]) == 130
    err = capsys.readouterr().err.splitlines()
    assert err[-2:] == [f"interrupted before the first epoch ended; {run} holds no weights yet",
                        RESUME + f"rnnc train {spec} -o {run} --resume --device cpu"]
    assert not (run / "model.onnx").exists()


def test_sigint_to_the_process_after_the_first_epoch(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, training={"epochs": 400, "batch_size": 16, "seed": 3})
    run = tmp_path / "run"
    process = rnnc(spec, "-o", run)
    deadline = time.monotonic() + 120
    while not (run / "weights.safetensors").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    lines = err.decode().splitlines()
    assert process.returncode == 130, lines
    assert lines[-1] == RESUME + f"rnnc train {spec} -o {run} --resume --device cpu"
    assert lines[-2].startswith(f"interrupted: {run}/model.onnx holds the weights of epoch ")
    epoch = int(lines[-2].rsplit(" ", 1)[1])
    assert 1 <= epoch < 400 and load_weights_metadata(run / "weights.safetensors")["epoch"] == str(epoch)
    assert predictions(run / "model.onnx").shape == (20, 1)
    assert "Traceback" not in err.decode()
