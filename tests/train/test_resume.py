"""Checkpoints: safe to load, and a resumed run ends bit-identical to an uninterrupted one.

The end-to-end proof kills `rnnc train` with SIGKILL in the middle of a run, resumes
it with `--resume`, and compares the final weights with those of a run never stopped.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import PYTHON, REPO, binary_data, tiny_model, write_spec

from rnnc import ir
from rnnc.artifacts import load_weights
from rnnc.data import from_arrays
from rnnc.errors import ArtifactError
from rnnc_torch.checkpoint import load_checkpoint, save_checkpoint
from rnnc_torch.trainer import Trainer

STATEFUL = dict(
    epochs=4,
    seed=5,
    early_stopping=ir.EarlyStopping(monitor="val_loss", patience=10),
    lr_schedule=ir.LRSchedule("plateau", patience=1, factor=0.5),
)
LAYERS = [ir.GRU(units=8, dropout=0.2), ir.Dropout(rate=0.2), ir.Dense(units=1, activation="sigmoid")]


def test_resumed_trainer_matches_an_uninterrupted_one(tmp_path: Path) -> None:
    model = tiny_model(LAYERS, **STATEFUL)
    train, val = from_arrays(model, *binary_data()), from_arrays(model, *binary_data(n=32, seed=9))
    path = tmp_path / "checkpoint.pt"

    def keep_epoch_2(trainer: Trainer, logs: dict) -> None:
        if logs["epoch"] == 2:
            save_checkpoint(path, trainer.state_dict(), "fp")

    whole = Trainer(model)
    whole.run(train, val, progress=False, hooks=[keep_epoch_2])
    torch.manual_seed(123)  # whatever the global RNG holds now, the checkpoint restores it
    resumed = Trainer(model)
    resumed.load_state_dict(load_checkpoint(path, "fp"))
    assert resumed.epoch == 2
    resumed.run(train, val, progress=False)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in whole.history]
    for name, value in whole.module.ir_state().items():
        assert np.array_equal(value, resumed.module.ir_state()[name]), name


def test_checkpoint_holds_no_code(tmp_path: Path) -> None:
    model = tiny_model(LAYERS, **STATEFUL)
    trainer = Trainer(model)
    trainer.run(from_arrays(model, *binary_data()), from_arrays(model, *binary_data(n=32, seed=9)), progress=False)
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, trainer.state_dict(), "fp")
    state = torch.load(path, weights_only=True)  # refuses anything but plain data
    assert state["epoch"] == 4 and state["fingerprint"] == "fp"


# (what is in the file, expected message fragment)
BAD_CHECKPOINTS = [
    (b"", "not a usable rnnc checkpoint"),
    (b"garbage", "not a usable rnnc checkpoint"),
]


@pytest.mark.parametrize(("content", "fragment"), BAD_CHECKPOINTS, ids=["empty", "garbage"])
def test_bad_checkpoint_is_an_artifact_error(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(content)
    with pytest.raises(ArtifactError, match=fragment):
        load_checkpoint(path)


def test_checkpoint_of_another_spec_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"epoch": 1}, "one")
    with pytest.raises(ArtifactError, match="made from a different spec"):
        load_checkpoint(path, "two")


def rnnc(*args: str | Path) -> subprocess.Popen:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [PYTHON, "-m", "rnnc", "train", *map(str, args), "--device", "cpu", "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO,
    )


def lines(path: Path) -> int:
    try:
        return len(path.read_text().splitlines())
    except FileNotFoundError:
        return 0


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    epochs = 8
    spec = write_spec(tmp_path, n=2048, training={"epochs": epochs, "batch_size": 16, "seed": 11,
                                                  "lr_schedule": {"type": "cosine", "min_lr": 0.001}})
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    process = rnnc(spec, "-o", killed)
    deadline = time.monotonic() + 120
    while lines(killed / "metrics.jsonl") < 1 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    if process.poll() is not None:
        pytest.fail(f"rnnc train ended on its own (status {process.returncode}): {process.stderr.read().decode()}")  # type: ignore[union-attr]
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = lines(killed / "metrics.jsonl")
    assert 1 <= done < epochs, "the kill must land in the middle of the run"
    resumed = rnnc(spec, "-o", killed, "--resume")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err.decode()
    # The kill may fall between the checkpoint and the metrics: resuming follows the checkpoint.
    resumed_after = int(re.search(r"resuming .* after epoch (\d+)", err.decode()).group(1))  # type: ignore[union-attr]
    assert abs(resumed_after - done) <= 1 and 1 <= resumed_after < epochs
    assert lines(killed / "metrics.jsonl") == epochs
    uninterrupted = rnnc(spec, "-o", whole)
    _, err = uninterrupted.communicate(timeout=300)
    assert uninterrupted.returncode == 0, err.decode()
    a, b = load_weights(killed / "weights.safetensors"), load_weights(whole / "weights.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert np.array_equal(a[name], b[name]), name
