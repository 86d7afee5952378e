"""A ragged Parquet file trains to the same weights as the padded `.npz` of the same samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from parquet_cases import GRAPH, ragged, sequences, step_type, write_parquet, write_spec

torch = pytest.importorskip("torch")

from rnnc.artifacts import load_weights, load_weights_metadata  # noqa: E402
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


def test_graph_inputs_by_name(tmp_path: Path) -> None:
    data = ragged(n=30)
    profile = np.random.default_rng(4).normal(size=(30, 2)).astype(np.float32)
    np.savez(tmp_path / "train.npz", events=data["x"], events_lengths=data["lengths"], profile=profile,
             churn=data["y"], churn_classes=np.array(["stay", "leave"]))
    write_parquet(tmp_path / "train.parquet", {
        "events": pa.array(sequences(data["x"], data["lengths"]), step_type(3)),
        "profile": pa.array(profile.tolist(), pa.list_(pa.float32(), 2)),
        "churn": pa.array(data["y"]),
    }, **{"rnnc.classes": b'{"churn_classes": ["stay", "leave"]}'})
    runs = {}
    for name in ("train.npz", "train.parquet"):
        spec = tmp_path / f"{name}.yaml"
        spec.write_text(GRAPH.replace("TRAIN", name))
        runs[name] = train(spec, tmp_path / f"run-{name}")
    assert_same_weights(runs["train.npz"], runs["train.parquet"])
    assert load_weights_metadata(tmp_path / "run-train.parquet" / "weights.safetensors")["output_classes"] == '{"churn": ["stay", "leave"]}'


def test_a_truncated_file_stops_training_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = ragged(n=20)
    path = write_parquet(tmp_path / "train.parquet", {"x": pa.array(sequences(data["x"], data["lengths"]), step_type(3)),
                                                      "y": pa.array(data["y"])})
    path.write_bytes(path.read_bytes()[:-200])
    status = main(["train", str(write_spec(tmp_path, "train.parquet")), "-o", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and str(path) in err and "not a readable Parquet file" in err
    assert not (tmp_path / "run").exists()
