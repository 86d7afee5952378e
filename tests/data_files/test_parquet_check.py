"""`rnnc check` on Parquet: the footers alone, each problem at the spec setting it contradicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from parquet_cases import ragged, sequences, step_type, write_parquet, write_spec

from rnnc.cli import main


def check(capsys: pytest.CaptureFixture[str], spec: Path) -> tuple[int, list[str]]:
    status = main(["check", str(spec)])
    return status, capsys.readouterr().err.splitlines()


def columns(features: int = 3, y: pa.Array | None = None) -> dict[str, pa.Array]:
    data = ragged(n=12, features=features)
    return {"x": pa.array(sequences(data["x"], data["lengths"]), step_type(features)), "y": y if y is not None else pa.array(data["y"])}


def test_a_good_file_passes_from_its_footer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_parquet(tmp_path / "train.parquet", columns())
    assert check(capsys, write_spec(tmp_path, "train.parquet"))[0] == 0


def test_a_directory_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "train").mkdir()
    write_parquet(tmp_path / "train" / "a.parquet", columns())
    write_parquet(tmp_path / "train" / "b.parquet", columns())
    assert check(capsys, write_spec(tmp_path, "train"))[0] == 0


@pytest.mark.parametrize(("cols", "where", "message"), [
    (columns(features=2), "input.shape", "x has 2 features per step, the spec's input needs 3 ([N, T, 3])"),
    (columns(y=pa.array(np.zeros((12, 2), np.float32).tolist(), pa.list_(pa.float32(), 2))), "layers[1].units",
     "y has shape [12, 2], binary_crossentropy over the model's output [1] needs [N] or [N, 1]"),
    ({"x": columns()["x"]}, "data.train", "no array 'y' (arrays: x)"),
    (columns(y=pa.array(["a"] * 12)), "data.train", "column 'y' holds string; rnnc reads numbers"),
])
def test_problems_are_placed_in_the_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str], cols: dict[str, pa.Array],
                                         where: str, message: str) -> None:
    write_parquet(tmp_path / "train.parquet", cols)
    spec = write_spec(tmp_path, "train.parquet")
    status, lines = check(capsys, spec)
    assert status == 2 and len(lines) == 1
    assert f": {where}: train.parquet: {message}" in lines[0], lines


def test_a_truncated_footer_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_parquet(tmp_path / "train.parquet", columns())
    path.write_bytes(path.read_bytes()[:-10])
    status, lines = check(capsys, write_spec(tmp_path, "train.parquet"))
    assert status == 2 and len(lines) == 1 and "data.train: " in lines[0]
    assert f"{path}: not a readable Parquet file, truncated or corrupt (" in lines[0]
