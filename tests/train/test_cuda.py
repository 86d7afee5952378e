"""Training on a CUDA device (skipped where there is none): the same loop, the same
artifacts, and a checkpoint that resumes on the device it was made on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import binary_data, tiny_model, write_spec

from rnnc import ir
from rnnc.artifacts import load_weights
from rnnc.cli import main
from rnnc.data import Dataset, from_arrays
from rnnc_torch.checkpoint import load_checkpoint, save_checkpoint
from rnnc_torch.fit import fit
from rnnc_torch.trainer import Trainer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def test_fit_on_cuda_learns() -> None:
    model = tiny_model(epochs=6, metrics=("accuracy", "auc"))
    history = fit(model, *binary_data(n=256), validation=binary_data(n=64, seed=1), device="cuda", progress=False, verbose=False)
    assert next(history.module.parameters()).device.type == "cuda"
    assert history[-1]["val_accuracy"] > 0.8


def test_variable_length_sequence_labelling_on_cuda() -> None:
    model = tiny_model([ir.GRU(units=4, return_sequences=True, bidirectional=True), ir.Dense(units=3, activation="softmax")],
                       shape=(None, 2), loss="sparse_categorical_crossentropy", epochs=2, metrics=("accuracy", "f1"))
    rng = np.random.default_rng(0)
    data = Dataset(rng.normal(size=(40, 7, 2)).astype(np.float32), rng.integers(0, 3, size=(40, 7)),
                   rng.integers(1, 8, size=40), "<test>")
    trainer = Trainer(model, "cuda")
    trainer.run(data, data, progress=False)
    assert np.isfinite(trainer.history[-1]["val_loss"])


def test_cuda_checkpoint_resumes_on_cuda(tmp_path: Path) -> None:
    model = tiny_model([ir.GRU(units=8, dropout=0.3), ir.Dense(units=1, activation="sigmoid")], epochs=3,
                       early_stopping=ir.EarlyStopping(monitor="val_loss", patience=5))
    train, val = from_arrays(model, *binary_data()), from_arrays(model, *binary_data(n=32, seed=2))
    path = tmp_path / "checkpoint.pt"
    whole = Trainer(model, "cuda")
    whole.run(train, val, progress=False,
              hooks=[lambda t, logs: logs["epoch"] == 1 and save_checkpoint(path, t.state_dict(), "fp")])
    resumed = Trainer(model, "cuda")
    resumed.load_state_dict(load_checkpoint(path, "fp"))
    resumed.run(train, val, progress=False)
    for name, value in whole.module.ir_state().items():
        np.testing.assert_allclose(resumed.module.ir_state()[name], value, rtol=1e-5, atol=1e-6)


def test_cli_device_cuda(tmp_path: Path) -> None:
    spec = write_spec(tmp_path)
    assert main(["train", str(spec), "-o", str(tmp_path / "run"), "--device", "cuda", "--no-progress"]) == 0
    assert load_weights(tmp_path / "run" / "weights.safetensors")
