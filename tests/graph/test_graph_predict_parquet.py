"""`rnnc predict -o OUT.parquet` of a v2 graph: one column per output, a row group per batch,
per-step outputs cut at their real steps; every value that of `-o OUT.npz`, to the bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx_graphs import mixed, sample
from predict_cases import ADD, CONV, add_data, compiled

from rnnc.cli import main

pytest.importorskip("rnnc_onnx")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

def predict(model: Path, data: Path, out: Path, batch: int = 4) -> None:
    assert main(["predict", str(model), str(data), "-o", str(out), "--batch-size", str(batch), "--no-progress"]) == 0


def test_each_output_is_a_column_equal_to_the_npz(tmp_path: Path) -> None:
    model = mixed(tmp_path / "mixed.onnx")  # churn [N, 1], tags per step of the tokens [N, T, 3], level [N, 2]
    inputs, lengths = sample(11, seed=4)
    np.savez(tmp_path / "in.npz", **inputs, events_lengths=lengths["events"])
    predict(model, tmp_path / "in.npz", tmp_path / "want.npz")
    predict(model, tmp_path / "in.npz", tmp_path / "out.parquet")
    file = pq.ParquetFile(tmp_path / "out.parquet")
    assert file.metadata.num_row_groups == 3 and file.metadata.num_rows == 11  # batches of 4, 4, 3
    schema = file.schema_arrow
    assert schema.names == ["churn", "tags", "level"]
    assert schema.field("churn").type == pa.list_(pa.float32(), 1) and schema.field("level").type == pa.list_(pa.float32(), 2)
    assert schema.field("tags").type == pa.list_(pa.list_(pa.float32(), 3))
    table = pq.read_table(tmp_path / "out.parquet")
    with np.load(tmp_path / "want.npz") as want:
        steps = want["tokens_lengths"]  # the lengths the tags follow, filled from the ids
        for name in ("churn", "level"):
            np.testing.assert_array_equal(np.asarray(table.column(name).to_pylist(), np.float32), want[name])
        tags = table.column("tags").to_pylist()
        assert [len(row) for row in tags] == steps.tolist() and 0 < steps.sum() < 11 * want["tags"].shape[1]
        for i, row in enumerate(tags):
            np.testing.assert_array_equal(np.asarray(row, np.float32).reshape(-1, 3), want["tags"][i, : steps[i]])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npz", "mixed.onnx", "out.parquet", "want.npz"]  # no temporaries


def test_decoded_answers_are_lists_of_ids(tmp_path: Path) -> None:
    run = compiled(tmp_path / "add", ADD)
    question = add_data(tmp_path / "qa.npz")["question"]
    np.savez(tmp_path / "q.npz", question=question)  # no answer_in: decoded
    predict(run, tmp_path / "q.npz", tmp_path / "want.npz")
    predict(run, tmp_path / "q.npz", tmp_path / "out.parquet")
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.schema.names == ["answer"] and table.schema.field("answer").type == pa.list_(pa.int64())
    with np.load(tmp_path / "want.npz") as want:
        ids, lengths = want["answer"], want["answer_lengths"]
    assert table.column("answer").to_pylist() == [ids[i, : lengths[i]].tolist() for i in range(9)]


def test_steps_a_convolution_changed_need_the_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = compiled(tmp_path / "conv", CONV)
    np.savez(tmp_path / "in.npz", events=np.ones((3, 5, 2), np.float32), events_lengths=np.array([1, 3, 5]))
    predict(run, tmp_path / "in.npz", tmp_path / "out.parquet")
    predict(run, tmp_path / "in.npz", tmp_path / "want.npz")
    rows = pq.read_table(tmp_path / "out.parquet").column("tags").to_pylist()
    assert [len(row) for row in rows] == [0, 2, 4]  # kernel 2, valid: one step less than each length
    with np.load(tmp_path / "want.npz") as want:
        for i, row in enumerate(rows):
            np.testing.assert_array_equal(np.asarray(row, np.float32).reshape(-1, 1), want["tags"][i, : len(row)])
    (tmp_path / "alone").mkdir()
    (run / "model.onnx").rename(tmp_path / "alone" / "model.onnx")
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "alone" / "model.onnx"), str(tmp_path / "in.npz"), "-o", str(tmp_path / "b.parquet")]) == 2
    assert capsys.readouterr().err == ("output 'tags' has (time-2)//1+1 steps, which a convolution made of its input's; "
                                       "to cut each row at its real steps, pass the run directory or --spec\n")
    assert not (tmp_path / "b.parquet").exists()


def test_a_bad_input_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = mixed(tmp_path / "mixed.onnx")
    inputs, lengths = sample(6, seed=2)
    inputs["profile"] = np.where(np.arange(6)[:, None] == 5, np.nan, inputs["profile"]).astype(np.float32)
    np.savez(tmp_path / "in.npz", **inputs, events_lengths=lengths["events"])
    capsys.readouterr()
    assert main(["predict", str(model), str(tmp_path / "in.npz"), "-o", str(tmp_path / "out.parquet"), "--batch-size", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "NaN" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npz", "mixed.onnx"]
