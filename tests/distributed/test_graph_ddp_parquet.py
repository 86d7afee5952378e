"""A graph under `--nproc 2` from ragged Parquet lists in two files: each rank gathers
its shard's rows from disk, and the two workers train what one process trains from the
`.npz` (weights and logs to 1e-5; graph_ddp_case.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ddp_runs import rnnc
from graph_ddp_case import arrays_of, assert_trained_alike, one_process, write_data, write_parquet, write_spec


def test_two_workers_from_parquet_train_what_one_process_trains(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    write_data(tmp_path)
    write_parquet(tmp_path, arrays_of(tmp_path))
    done = rnnc("train", str(write_spec(tmp_path, "parts")), "-o", str(tmp_path / "run2"), "--nproc", "2",
                "--device", "cpu", "--no-progress")
    assert done.returncode == 0, done.stderr[-3000:]
    assert_trained_alike(one_process(tmp_path), tmp_path / "run2")
