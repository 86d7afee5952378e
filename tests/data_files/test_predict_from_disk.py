"""`rnnc predict` and `rnnc evaluate` over a .npy directory and Parquet: the outputs of the in-memory .npz, exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from parquet_cases import GRAPH, ragged, sequences, step_type, write_parquet, write_spec

pytest.importorskip("torch")
pytest.importorskip("rnnc_onnx")

from rnnc.cli import main  # noqa: E402

LABELLER = {
    "layers": [{"type": "gru", "units": 5, "return_sequences": True}, {"type": "dense", "units": 2, "activation": "softmax"}],
    "loss": "sparse_categorical_crossentropy",
}


@pytest.fixture(scope="module", params=["classifier", "labeller"])
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    import torch

    folder = tmp_path_factory.mktemp(request.param)
    data = ragged(n=60, seed=2)
    data["y"] = data["y"] if request.param == "classifier" else data["tags"]
    arrays = {"x": data["x"], "y": data["y"], "lengths": data["lengths"]}
    np.savez(folder / "data.npz", **arrays)
    spec = write_spec(folder, "data.npz", **({} if request.param == "classifier" else LABELLER),
                      training={"epochs": 1, "batch_size": 16, "seed": 1})
    torch.set_num_threads(1)
    assert main(["train", str(spec), "-o", str(folder / "run"), "--device", "cpu", "--no-progress"]) == 0
    return folder, arrays


def layouts(folder: Path, arrays: dict[str, np.ndarray]) -> list[Path]:
    """The data as a .npy directory, converted Parquet, and hand-written ragged Parquet in two files."""
    assert main(["data", "convert", str(folder / "data.npz"), "-o", str(folder / "npy"), "--no-progress"]) == 0
    assert main(["data", "convert", str(folder / "data.npz"), "-o", str(folder / "conv.parquet"), "--no-progress"]) == 0
    (folder / "parts").mkdir(exist_ok=True)
    for name, rows in (("0.parquet", slice(0, 25)), ("1.parquet", slice(25, None))):
        lengths = arrays["lengths"][rows]
        write_parquet(folder / "parts" / name, {"x": pa.array(sequences(arrays["x"][rows], lengths), step_type(3))},
                      row_group_size=10)
    return [folder / "npy", folder / "conv.parquet", folder / "parts"]


def predict(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> str:
    assert main(["predict", *map(str, argv), "--batch-size", "16", "--no-progress"]) == 0
    return capsys.readouterr().out


def test_predict_equals_the_npz(run: tuple[Path, dict[str, np.ndarray]], capsys: pytest.CaptureFixture[str]) -> None:
    folder, arrays = run
    capsys.readouterr()
    csv = predict(capsys, folder / "run", folder / "data.npz")
    predict(capsys, folder / "run", folder / "data.npz", "-o", folder / "want.npz")
    want = np.load(folder / "want.npz")
    sources = layouts(folder, arrays)
    capsys.readouterr()
    for i, source in enumerate(sources):
        assert predict(capsys, folder / "run", source) == csv, source
        predict(capsys, folder / "run", source, "-o", folder / f"got{i}.npz")
        got = np.load(folder / f"got{i}.npz")
        np.testing.assert_array_equal(got["y"], want["y"])
        np.testing.assert_array_equal(got["lengths"], want["lengths"])


def test_parquet_output(run: tuple[Path, dict[str, np.ndarray]], capsys: pytest.CaptureFixture[str]) -> None:
    folder, arrays = run
    capsys.readouterr()
    predict(capsys, folder / "run", folder / "data.npz", "-o", folder / "want.npz")
    want = np.load(folder / "want.npz")["y"]
    predict(capsys, folder / "run", folder / "data.npz", "-o", folder / "out.parquet")
    assert pq.ParquetFile(folder / "out.parquet").num_row_groups == 4  # one per batch of 16
    rows = pq.read_table(folder / "out.parquet").column("y").to_pylist()
    assert len(rows) == 60
    for i, row in enumerate(rows):
        expected = want[i, : arrays["lengths"][i]] if want.ndim == 3 else want[i]
        np.testing.assert_array_equal(np.asarray(row, np.float32), expected)
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_evaluate_equals_the_npz(run: tuple[Path, dict[str, np.ndarray]], capsys: pytest.CaptureFixture[str]) -> None:
    folder, arrays = run
    capsys.readouterr()
    assert main(["evaluate", str(folder / "run"), str(folder / "data.npz"), "--json"]) == 0
    want = json.loads(capsys.readouterr().out)
    assert main(["data", "convert", str(folder / "data.npz"), "-o", str(folder / "eval.parquet"), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(folder / "run"), str(folder / "eval.parquet"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == want


def test_damaged_parquet_is_one_line_and_no_output(run: tuple[Path, dict[str, np.ndarray]], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    folder, arrays = run
    path = write_parquet(tmp_path / "d.parquet", {"x": pa.array(sequences(arrays["x"], arrays["lengths"]), step_type(3))})
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 40])
    capsys.readouterr()
    assert main(["predict", str(folder / "run"), str(path), "-o", str(tmp_path / "out.csv")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"{path}: not a readable Parquet file, truncated or corrupt (") and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.parquet"]


def test_truncated_npy_directory_is_one_line(run: tuple[Path, dict[str, np.ndarray]], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    folder, arrays = run
    (tmp_path / "d").mkdir()
    np.save(tmp_path / "d" / "x.npy", arrays["x"])
    np.save(tmp_path / "d" / "lengths.npy", arrays["lengths"])
    raw = (tmp_path / "d" / "x.npy").read_bytes()
    (tmp_path / "d" / "x.npy").write_bytes(raw[:-12])
    capsys.readouterr()
    assert main(["predict", str(folder / "run"), str(tmp_path / "d"), "-o", str(tmp_path / "out.npz")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == (f"{tmp_path / 'd' / 'x.npy'}: 'x' has a damaged header or is truncated: its shape [60, 7, 3] "
                                 f"needs 5,040 bytes of float32, the file holds 5,028\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_graph_predict_from_parquet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    data = ragged(n=30, seed=7)
    profile = np.random.default_rng(4).normal(size=(30, 2)).astype(np.float32)
    np.savez(tmp_path / "train.npz", events=data["x"], events_lengths=data["lengths"], profile=profile, churn=data["y"])
    (tmp_path / "spec.yaml").write_text(GRAPH.replace("TRAIN", "train.npz").replace("epochs: 2", "epochs: 1"))
    torch.set_num_threads(1)
    assert main(["train", str(tmp_path / "spec.yaml"), "-o", str(tmp_path / "run"), "--device", "cpu", "--no-progress"]) == 0
    write_parquet(tmp_path / "in.parquet", {
        "events": pa.array(sequences(data["x"], data["lengths"]), step_type(3)),
        "profile": pa.array(profile.tolist(), pa.list_(pa.float32(), 2)),
        "churn": pa.array(data["y"]),  # an output's targets: ignored
    }, row_group_size=7)
    capsys.readouterr()
    want = predict(capsys, tmp_path / "run", tmp_path / "train.npz")
    assert predict(capsys, tmp_path / "run", tmp_path / "in.parquet") == want
    predict(capsys, tmp_path / "run", tmp_path / "train.npz", "-o", tmp_path / "a.npz")
    predict(capsys, tmp_path / "run", tmp_path / "in.parquet", "-o", tmp_path / "b.npz")
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    assert a.files == b.files
    for name in a.files:
        np.testing.assert_array_equal(a[name], b[name])
