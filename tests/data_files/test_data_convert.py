"""`rnnc data convert`: npz -> Parquet -> .npy directory gives back the arrays, in chunks, atomically."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from parquet_cases import ragged

from rnnc.cli import main
from rnnc.data_parquet import read_table


def convert(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    status = main(["data", "convert", *map(str, argv), "--no-progress"])
    out, err = capsys.readouterr()
    return status, out, err


def arrays_v1() -> dict[str, np.ndarray]:
    data = ragged(n=45)
    return {"x": data["x"], "y": data["y"], "lengths": data["lengths"], "classes": np.array(["no", "yes"])}


def arrays_v2() -> dict[str, np.ndarray]:
    data = ragged(n=45, features=2, seed=3)
    ids = np.where(data["tags"] > 0, 5, 0) + np.arange(7)[None, :] % 3 * (np.arange(7)[None, :] < data["lengths"][:, None])
    return {"events": data["x"], "events_lengths": data["lengths"], "words": ids.astype(np.int32),
            "profile": np.random.default_rng(1).normal(size=(45, 4)).astype(np.float64), "churn": data["y"][:, None],
            "tags": data["tags"], "churn_classes": np.array(["stay", "leave"])}


def assert_same(folder: Path, arrays: dict[str, np.ndarray]) -> None:
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{n}.npy" for n in arrays)
    for name, want in arrays.items():
        got = np.load(folder / f"{name}.npy")
        assert got.dtype == want.dtype and got.shape == want.shape, name
        np.testing.assert_array_equal(got, want, err_msg=name)


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("arrays", [arrays_v1, arrays_v2])
def test_round_trip_npz_parquet_npy(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                    compressed: bool, arrays) -> None:
    monkeypatch.setattr("rnnc.data_convert.CHUNK_BYTES", 2000)  # several chunks and row groups
    data = arrays()
    (np.savez_compressed if compressed else np.savez)(tmp_path / "in.npz", **data)
    status, out, err = convert(capsys, tmp_path / "in.npz", "-o", tmp_path / "d.parquet")
    assert (status, err) == (0, "") and out == f"{tmp_path / 'd.parquet'}: 45 rows ({', '.join(data)}) as Parquet\n"
    assert pq.ParquetFile(tmp_path / "d.parquet").num_row_groups > 2
    status, out, err = convert(capsys, tmp_path / "d.parquet", "-o", tmp_path / "back")
    assert (status, err) == (0, "")
    assert_same(tmp_path / "back", data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back", "d.parquet", "in.npz"]  # no temporary left


def test_sequences_are_ragged_on_disk(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = arrays_v1()
    np.savez(tmp_path / "in.npz", **data)
    assert convert(capsys, tmp_path / "in.npz", "-o", tmp_path / "d.parquet")[0] == 0
    table = pq.read_table(tmp_path / "d.parquet")
    assert [len(row) for row in table.column("x").to_pylist()] == data["lengths"].tolist()
    assert table.column("x").to_pylist()[3] == data["x"][3, : data["lengths"][3]].tolist()
    assert json.loads(table.schema.metadata[b"rnnc.classes"]) == {"classes": ["no", "yes"]}
    read = read_table(tmp_path / "d.parquet")
    np.testing.assert_array_equal(read.columns["x"].take(np.arange(45), 7), data["x"])


def test_npy_directory_to_parquet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = arrays_v2()
    (tmp_path / "dir").mkdir()
    for name, values in data.items():
        np.save(tmp_path / "dir" / f"{name}.npy", values)
    assert convert(capsys, tmp_path / "dir", "-o", tmp_path / "d.parquet")[0] == 0
    assert convert(capsys, tmp_path / "d.parquet", "-o", tmp_path / "back")[0] == 0
    assert_same(tmp_path / "back", data)


def test_jsonl_records(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("rnnc.data_convert.CHUNK_BYTES", 64)
    records = [{"x": [[0.5, 1], [2, 3]], "y": 1}, {"x": [[4, 5]], "y": 0}, {"x": [[6, 7], [8, 9], [1, 2]], "y": 1}]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    assert convert(capsys, tmp_path / "d.jsonl", "-o", tmp_path / "d")[0] == 0
    x = np.zeros((3, 3, 2), np.float32)
    for i, r in enumerate(records):
        x[i, : len(r["x"])] = r["x"]
    assert_same(tmp_path / "d", {"x": x, "y": np.array([1, 0, 1], np.int64)})


@pytest.mark.parametrize(("name", "content", "message"), [
    ("d.csv", "a,b\n1,2\n", "{path}: a .csv is a time series or raw text, which the spec's data.csv or data.text turn into samples "
                             "at training time; rnnc data convert reads .npz, .jsonl, .parquet and .npy directories"),
    ("d.jsonl", '{"text": "hello", "label": "a"}\n', "{path}:1: field 'text' holds text; raw text is tokenised at training "
                                                    "time (the spec's data.text), rnnc data convert reads numbers"),
    ("d.jsonl", '{"x": [1, 2], "y": 1}\n{"x": [[1]], "y": 0}\n', "{path}:2: field 'x' has shape [1, 1], line 1 [2] "
                                                               "(only the number of steps may differ)"),
    ("d.npz", "not a zip", "{path}: not a valid .npz archive (no zip structure: truncated, corrupt or another format)"),
])
def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    status, out, err = convert(capsys, path, "-o", tmp_path / "out.parquet")
    assert (status, out, err) == (2, "", message.format(path=path) + "\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_a_member_damaged_midway_leaves_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("rnnc.data_convert.CHUNK_BYTES", 20000)
    data = ragged(n=3000)
    np.savez_compressed(tmp_path / "in.npz", x=data["x"], y=data["y"])
    raw = bytearray((tmp_path / "in.npz").read_bytes())
    at = raw.find(b"x.npy") + len(raw) // 2  # halfway through x's deflated stream: chunks were written before
    raw[at : at + 64] = bytes(64)
    (tmp_path / "in.npz").write_bytes(bytes(raw))
    for out in ("out.parquet", "out"):
        status, _, err = convert(capsys, tmp_path / "in.npz", "-o", tmp_path / out)
        assert status == 2 and err.startswith(f"{tmp_path / 'in.npz'}: 'x' is damaged (") and err.count("\n") == 1
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npz"]


def test_out_must_be_new(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.savez(tmp_path / "in.npz", **arrays_v1())
    (tmp_path / "out").mkdir()
    assert convert(capsys, tmp_path / "in.npz", "-o", tmp_path / "out") == (
        2, "", f"-o {tmp_path / 'out'}: already exists; remove it or choose another name\n")


def test_without_pyarrow_one_line_names_the_extra(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    np.savez(tmp_path / "in.npz", **arrays_v1())
    monkeypatch.setitem(__import__("sys").modules, "pyarrow", None)  # import pyarrow raises ImportError
    monkeypatch.setitem(__import__("sys").modules, "pyarrow.parquet", None)
    assert convert(capsys, tmp_path / "in.npz", "-o", tmp_path / "out.parquet") == (
        2, "", "reading Parquet needs pyarrow: pip install 'rnnc[data]'\n")
    assert convert(capsys, tmp_path / "in.npz", "-o", tmp_path / "out")[0] == 0  # a .npy directory needs no pyarrow
