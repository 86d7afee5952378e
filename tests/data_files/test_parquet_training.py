"""A ragged Parquet file trains to the same weights as the padded `.npz` of the same samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from parquet_cases import ragged, sequences, step_type, write_parquet, write_spec

torch = pytest.importorskip("torch")

from rnnc.artifacts import load_weights  # noqa: E402
from rnnc.cli import main  # noqa: E402


def train(spec: Path, run: Path) -> dict[str, np.ndarray]:
    torch.manual_seed(0)
    with torch.inference_mode(False):
        torch.set_num_threads(1)
        assert main(["train", str(spec), "-o", str(run), "--device", "cpu", "--no-progress"]) == 0
    return load_weights(run / "weights.safetensors")


def assert_same_weights(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_sequence_classifier(tmp_path: Path) -> None:
    data = ragged()
    np.savez(tmp_path / "train.npz", x=data["x"], y=data["y"], lengths=data["lengths"])
    write_parquet(tmp_path / "train.parquet", {
        "x": pa.array(sequences(data["x"], data["lengths"]), step_type(3)),
        "y": pa.array(data["y"]),
    })
    from_npz = train(write_spec(tmp_path, "train.npz"), tmp_path / "npz")
    from_parquet = train(write_spec(tmp_path, "train.parquet"), tmp_path / "parquet")
    assert_same_weights(from_npz, from_parquet)


def test_sequence_labelling_from_a_directory(tmp_path: Path) -> None:
    """Per-step targets as lists; two files in name order are one data set."""
    data = ragged(n=36)
    np.savez(tmp_path / "train.npz", x=data["x"], y=data["tags"], lengths=data["lengths"])
    folder = tmp_path / "train"
    folder.mkdir()
    for name, rows in (("part-0.parquet", slice(0, 20)), ("part-1.parquet", slice(20, None))):
        lengths = data["lengths"][rows]
        write_parquet(folder / name, {
            "x": pa.array(sequences(data["x"][rows], lengths), pa.list_(pa.list_(pa.float64()))),
            "y": pa.array(sequences(data["tags"][rows], lengths), pa.list_(pa.int32())),
        })
    sections = {
        "layers": [{"type": "gru", "units": 5, "return_sequences": True}, {"type": "dense", "units": 2, "activation": "softmax"}],
        "loss": "sparse_categorical_crossentropy",
    }
    from_npz = train(write_spec(tmp_path, "train.npz", **sections), tmp_path / "npz")
    from_parquet = train(write_spec(tmp_path, "train", **sections), tmp_path / "parquet")
    assert_same_weights(from_npz, from_parquet)
