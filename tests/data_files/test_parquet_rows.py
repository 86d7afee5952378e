"""Parquet read ragged: the row source hands out what the padded arrays hold, and bad files are one line each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from parquet_cases import ragged, sequences, step_type, write_parquet

from rnnc.data_parquet import read_table
from rnnc.errors import DataError
from rnnc.parquet_rows import ParquetRows
from rnnc.rows import ArrayRows


def test_take_pads_to_the_batch_longest_as_array_rows_cuts(tmp_path: Path) -> None:
    data = ragged(n=30)
    path = write_parquet(tmp_path / "d.parquet", {
        "x": pa.array(sequences(data["x"], data["lengths"]), step_type(3)),
        "y": pa.array(sequences(data["tags"], data["lengths"]), step_type(None, pa.int64())),
    }, row_group_size=7)
    rows = ParquetRows(read_table(path), {"x": "lengths", "y": "lengths"})
    reference = ArrayRows({"x": data["x"], "y": data["tags"], "lengths": data["lengths"]}, "ref", {"x": "lengths", "y": "lengths"})
    assert len(rows) == 30 and rows.columns == reference.columns
    for index in (np.array([3, 1, 4, 1, 5]), np.arange(30), np.array([7]), np.array([0, 29, 12])):
        got, want = rows.take(index), reference.take(index)
        assert got.keys() == want.keys()
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
            assert got[name].dtype == want[name].dtype


def test_a_lengths_column_cuts_lists_padded_on_disk(tmp_path: Path) -> None:
    data = ragged(n=10)
    path = write_parquet(tmp_path / "d.parquet", {
        "x": pa.array([row.tolist() for row in data["x"]], step_type(3)),  # every row padded to 7 steps
        "y": pa.array(data["y"]), "lengths": pa.array(data["lengths"]),
    })
    rows = ParquetRows(read_table(path), {"x": "lengths"})
    index = np.array([2, 5])
    np.testing.assert_array_equal(rows.take(index)["x"], data["x"][index][:, : data["lengths"][index].max()])


def test_rows_of_one_length_have_no_lengths(tmp_path: Path) -> None:
    x = np.arange(24, dtype=np.float32).reshape(4, 3, 2)
    path = write_parquet(tmp_path / "d.parquet", {"x": pa.array(x.tolist(), step_type(2)), "y": pa.array([0.0, 1, 0, 1])})
    rows = ParquetRows(read_table(path), {"x": "lengths"})
    assert set(rows.columns) == {"x", "y"} and rows.columns["x"].shape == (4, 3, 2)
    np.testing.assert_array_equal(rows.take(np.array([3, 0]))["x"], x[[3, 0]])


def test_a_directory_is_one_data_set_in_name_order(tmp_path: Path) -> None:
    for name, ids in (("b.parquet", [[4], [5, 6]]), ("a.parquet", [[1, 2, 3]]), ("c.parquet", [[7, 8]])):
        write_parquet(tmp_path / name, {"x": pa.array(ids, pa.list_(pa.int64())), "y": pa.array([0] * len(ids))})
    rows = ParquetRows(read_table(tmp_path), {"x": "lengths"})
    got = rows.take(np.arange(4))
    np.testing.assert_array_equal(got["x"], [[1, 2, 3], [4, 0, 0], [5, 6, 0], [7, 8, 0]])
    np.testing.assert_array_equal(got["lengths"], [3, 1, 2, 2])


def _good(path: Path) -> Path:
    return write_parquet(path, {"x": pa.array([[[1.0, 2.0]], [[3.0, 4.0], [5.0, 6.0]]], step_type(2)), "y": pa.array([0.0, 1.0])})


def test_truncated_file_is_one_line_naming_it(tmp_path: Path) -> None:
    path = _good(tmp_path / "d.parquet")
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError) as err:
        read_table(path)
    assert str(err.value).startswith(f"{path}: not a readable Parquet file, truncated or corrupt (")
    assert "\n" not in str(err.value)


def test_corrupt_pages_are_one_line_naming_the_file(tmp_path: Path) -> None:
    path = _good(tmp_path / "d.parquet")
    raw = bytearray(path.read_bytes())
    raw[4:40] = b"\xff" * 36  # the first column chunk's page header and data
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=rf"^{path}: not a readable Parquet file, truncated or corrupt \(.+\)$"):
        read_table(path)


@pytest.mark.parametrize(("column", "message"), [
    (pa.array(["a", "b"]), "column 'x' holds string; rnnc reads numbers"),
    (pa.array([["a"], ["b"]]), "column 'x' holds a list of string; rnnc reads numbers"),
    (pa.array([[1.0, None], [2.0]]), "column 'x' has 1 empty (null) steps"),
    (pa.array([[[1.0]], None], pa.list_(pa.list_(pa.float32()))), "column 'x' has 1 empty (null) rows, the first at row 1"),
    (pa.array([[[1.0, 2.0]], [[1.0], [2.0, 3.0]]]), "column 'x': every step must hold the same number of features; "
                                                      "row 1 has a step of 1 after steps of 2"),
])
def test_wrong_column_types_are_named(tmp_path: Path, column: pa.Array, message: str) -> None:
    path = write_parquet(tmp_path / "d.parquet", {"x": column, "y": pa.array([0.0, 1.0])})
    with pytest.raises(DataError) as err:
        read_table(path)
    assert str(err.value) == f"{path}: {message}" or str(err.value).startswith(f"{path}: {message}")


def test_files_of_a_directory_need_the_same_columns(tmp_path: Path) -> None:
    _good(tmp_path / "a.parquet")
    write_parquet(tmp_path / "b.parquet", {"x": pa.array([[[1.0, 2.0]]], step_type(2))})
    with pytest.raises(DataError, match=r"b.parquet: has columns x, but .*a.parquet has x, y \(the files of a directory"):
        read_table(tmp_path)
