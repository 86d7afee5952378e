"""A directory of `.npy` arrays trains to the same weights as the `.npz` holding them.

`rnnc train` reads such a directory a batch at a time (`rnnc.rows.NpyDirRows`, the
trainer's prefetching `StreamData`); the batches, their order and so the weights must
be exactly those of the in-memory path. A damaged file is one line naming it, exit 2.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from rnnc.artifacts import load_weights
from rnnc.cli import main
from rnnc.data import load_file
from rnnc.rows_dataset import RowsDataset
from rnnc.spec import load_model


def ragged(n: int = 40, steps: int = 7, features: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, steps + 1, n)
    x = rng.normal(size=(n, steps, features)).astype(np.float32)
    x[np.arange(steps)[None, :] >= lengths[:, None]] = 0.0
    y = (x[:, :, 0].sum(1) > 0).astype(np.float32)
    tags = (x[:, :, 1] > 0).astype(np.int64) * (np.arange(steps)[None, :] < lengths[:, None])
    return {"x": x, "y": y, "lengths": lengths, "tags": tags}


def spec(folder: Path, train: str, **sections: object) -> Path:
    body = {
        "rnnc": 1, "name": "disk", "input": {"shape": [None, 3]},
        "layers": [{"type": "lstm", "units": 6}, {"type": "dense", "units": 1, "activation": "sigmoid"}],
        "loss": "binary_crossentropy", "optimizer": {"type": "adam", "lr": 0.01}, "metrics": ["accuracy"],
        "training": {"epochs": 3, "batch_size": 8, "seed": 3, "validation_split": 0.25},
        "data": {"train": train},
    }
    body.update(sections)
    path = folder / f"{train.replace('/', '_')}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def write_dir(folder: Path, arrays: dict[str, np.ndarray]) -> Path:
    folder.mkdir()
    for name, value in arrays.items():
        np.save(folder / f"{name}.npy", value)
    return folder


def train(spec_path: Path, run: Path) -> dict[str, np.ndarray]:
    with torch.inference_mode(False):
        torch.set_num_threads(1)
        assert main(["train", str(spec_path), "-o", str(run), "--device", "cpu", "--no-progress"]) == 0
    return load_weights(run / "weights.safetensors")


def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_sequence_classifier_same_weights(tmp_path: Path) -> None:
    data = ragged()
    arrays = {"x": data["x"], "y": data["y"], "lengths": data["lengths"], "classes": np.array(["no", "yes"])}
    np.savez(tmp_path / "train.npz", **arrays)
    write_dir(tmp_path / "train", arrays)
    model = load_model(spec(tmp_path, "train"))
    assert isinstance(load_file(model, tmp_path / "train"), RowsDataset)  # left on disk, not loaded
    same(train(spec(tmp_path, "train.npz"), tmp_path / "a"), train(spec(tmp_path, "train"), tmp_path / "b"))


def test_sequence_labelling_same_weights(tmp_path: Path) -> None:
    """Per-step targets and a mask: batches cut to their longest, padded back alike."""
    data = ragged(seed=1)
    arrays = {"x": data["x"], "y": data["tags"], "lengths": data["lengths"]}
    np.savez(tmp_path / "train.npz", **arrays)
    write_dir(tmp_path / "train", arrays)
    sections = {"layers": [{"type": "gru", "units": 5, "return_sequences": True},
                           {"type": "dense", "units": 2, "activation": "softmax"}],
                "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}
    same(train(spec(tmp_path, "train.npz", **sections), tmp_path / "a"), train(spec(tmp_path, "train", **sections), tmp_path / "b"))


GRAPH = {
    "rnnc": 2, "name": "churn",
    "inputs": {"events": {"shape": [None, 3]}, "profile": {"shape": [2]}},
    "layers": [{"name": "enc", "type": "lstm", "units": 4, "input": "events"},
               {"name": "both", "type": "concatenate", "input": ["enc", "profile"]},
               {"name": "churn", "type": "dense", "units": 1, "activation": "sigmoid"}],
    "outputs": {"churn": {"loss": "binary_crossentropy", "metrics": ["accuracy"]}},
    "optimizer": "adam", "training": {"epochs": 2, "batch_size": 8, "seed": 1},
}


def same_from_disk(tmp_path: Path, body: dict, arrays: dict[str, np.ndarray]) -> None:
    """The spec `body` trained on `arrays` from a `.npz` in memory and from a `.npy`
    directory on disk (train.npz.yaml and train.yaml in `tmp_path`) ends at the same
    weights, to the bit."""
    np.savez(tmp_path / "train.npz", **arrays)
    write_dir(tmp_path / "train", arrays)
    runs = {}
    for name in ("train.npz", "train"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({**body, "data": {"train": name}}))
        runs[name] = train(path, tmp_path / f"run-{name}")
    same(runs["train.npz"], runs["train"])


# A graph with a per-step output beside a per-sequence one (tests/data_scale share it).
STEPS_GRAPH = {
    "rnnc": 2, "name": "tags",
    "inputs": {"events": {"shape": [None, 3]}, "profile": {"shape": [2]}},
    "layers": [{"name": "enc", "type": "gru", "units": 4, "return_sequences": True, "input": "events"},
               {"name": "steps", "type": "dense", "units": 1},
               {"name": "last", "type": "pool", "mode": "last", "input": "enc"},
               {"name": "both", "type": "concatenate", "input": ["last", "profile"]},
               {"name": "churn", "type": "dense", "units": 1, "activation": "sigmoid"}],
    "outputs": {"steps": {"loss": "mse"}, "churn": {"loss": "binary_crossentropy", "metrics": ["accuracy"]}},
    "optimizer": {"type": "adam", "lr": 0.01}, "training": {"epochs": 2, "batch_size": 7, "seed": 1, "validation_split": 0.2},
}


def test_graph_same_weights(tmp_path: Path) -> None:
    data = ragged(n=30, seed=2)
    profile = np.random.default_rng(4).normal(size=(30, 2)).astype(np.float32)
    same_from_disk(tmp_path, GRAPH, {"events": data["x"], "events_lengths": data["lengths"], "profile": profile, "churn": data["y"]})


def test_resume_from_disk_is_exact(tmp_path: Path) -> None:
    from rnnc_torch.checkpoint import load_checkpoint, save_checkpoint
    from rnnc_torch.trainer import Trainer

    data = ragged(seed=5)
    write_dir(tmp_path / "train", {"x": data["x"], "y": data["y"], "lengths": data["lengths"]})
    model = load_model(spec(tmp_path, "train", training={"epochs": 4, "batch_size": 8, "seed": 2}))
    source = load_file(model, tmp_path / "train")
    path = tmp_path / "checkpoint.pt"

    def keep_epoch_2(trainer: Trainer, logs: dict) -> None:
        if logs["epoch"] == 2:
            save_checkpoint(path, trainer.state_dict(), "fp")

    whole = Trainer(model)
    whole.run(source, progress=False, hooks=[keep_epoch_2])
    resumed = Trainer(model)
    resumed.load_state_dict(load_checkpoint(path, "fp"))
    resumed.run(source, progress=False)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in whole.history]
    same(whole.module.ir_state(), resumed.module.ir_state())


@pytest.mark.parametrize("damage", ["truncated", "header"])
def test_damaged_file_is_one_line_naming_it(tmp_path: Path, damage: str, capsys: pytest.CaptureFixture[str]) -> None:
    data = ragged()
    folder = write_dir(tmp_path / "train", {"x": data["x"], "y": data["y"], "lengths": data["lengths"]})
    raw = (folder / "x.npy").read_bytes()
    (folder / "x.npy").write_bytes(raw[:-100] if damage == "truncated" else b"\x93NUMPY\x01\x00garbage" + raw[20:])
    for command in ("train", "check"):
        args = [command, str(spec(tmp_path, "train"))] + (["-o", str(tmp_path / "run"), "--no-progress"] if command == "train" else [])
        assert main(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "x.npy" in err[0], err
        assert ("truncated" in err[0]) == (damage == "truncated"), err
    assert not (tmp_path / "run" / "weights.safetensors").exists()


def test_check_reads_headers_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A shape that does not fit the spec is found from the header, placed in the spec."""
    data = ragged()
    write_dir(tmp_path / "train", {"x": data["x"][:, :, :2], "y": data["y"], "lengths": data["lengths"]})
    assert main(["check", str(spec(tmp_path, "train"))]) == 2
    err = capsys.readouterr().err
    assert "x has 2 features per step, the spec's input needs 3" in err and "input.shape" in err
