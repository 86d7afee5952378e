"""What `rnnc predict` writes: a CSV table with a header (classes named, probabilities,
targets), per-step outputs over real steps only (`--format long`: a row per step), the
raw arrays in `.npy`/`.npz`; as many rows as the input, and quiet ends (`| head -1`, an
error after rows went to stdout)."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnc.cli import main
from rnnc.cli.predict_output import ArrayWriter, Columns, CsvWriter
from rnnc.errors import ArtifactError, DataError
from rnnc.initial import initial_weights
from rnnc.runtime import Predictor
from rnnc.spec import model_from_mapping

rnnc_onnx = pytest.importorskip("rnnc_onnx")


def export(folder: Path, last: dict, loss: object, classes: list[str] | None = None, sequences: bool = False) -> Path:
    """An untrained model.onnx on float input [null, 2], alone in `folder` (no spec beside it)."""
    model = model_from_mapping({
        "rnnc": 1, "name": "m", "input": {"shape": [None, 2]},
        "layers": [{"type": "gru", "units": 4, "return_sequences": sequences}, last], "loss": loss, "optimizer": "adam",
    })
    path = folder / "m.onnx"
    rnnc_onnx.export(model, initial_weights(model), path, classes=classes)
    return path


def table(text: str) -> tuple[list[str], list[list[str]]]:
    header, *rows = csv.reader(io.StringIO(text))
    return header, rows


X = np.random.default_rng(0).normal(size=(5, 4, 2)).astype(np.float32)
SOFTMAX = {"type": "dense", "units": 3, "activation": "softmax"}
SIGMOID = {"type": "dense", "units": 1, "activation": "sigmoid"}

# (id, last layer, loss, classes, header, the p_ columns from the raw output y)
TABLES = [
    ("softmax, named", SOFTMAX, "categorical_crossentropy", ["a", "b", "c"], "label,probability,p_a,p_b,p_c", lambda y: y),
    ("softmax, by index", SOFTMAX, "categorical_crossentropy", None, "label,probability,p_0,p_1,p_2", lambda y: y),
    ("logits", {"type": "dense", "units": 3}, {"type": "sparse_categorical_crossentropy", "from_logits": True}, None,
     "label,probability,p_0,p_1,p_2", lambda y: np.exp(y) / np.exp(y).sum(-1, keepdims=True)),
    ("binary, named", SIGMOID, "binary_crossentropy", ["no", "yes"], "label,probability,p_yes", lambda y: y),
    ("binary, by index", SIGMOID, "binary_crossentropy", None, "label,probability,p_1", lambda y: y),
    ("multi-label", {"type": "dense", "units": 2, "activation": "sigmoid"}, "binary_crossentropy", ["cat", "dog"], "p_cat,p_dog", lambda y: y),
    ("regression, one", {"type": "dense", "units": 1}, "mse", None, "y", lambda y: y),
    ("regression, several", {"type": "dense", "units": 2}, "mse", None, "y_0,y_1", lambda y: y),
]


@pytest.mark.parametrize(("what", "last", "loss", "classes", "header", "shown"), TABLES, ids=[t[0] for t in TABLES])
def test_the_csv_names_its_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str], what, last, loss, classes, header, shown) -> None:
    model = export(tmp_path, last, loss, classes)
    np.save(tmp_path / "in.npy", X)
    assert main(["predict", str(model), str(tmp_path / "in.npy")]) == 0
    got, rows = table(capsys.readouterr().out)
    assert ",".join(got) == header and len(rows) == len(X)
    y = Predictor(model).run(X)
    want = shown(y.astype(np.float64))
    start = 0 if got[0].startswith(("p_", "y")) else 2
    np.testing.assert_allclose([[float(v) for v in r[start:]] for r in rows], want, rtol=1e-5, atol=1e-6)
    if start:  # the predicted class and its probability
        probs = np.concatenate([1 - want, want], -1) if want.shape[1] == 1 else want
        names = classes or [str(i) for i in range(probs.shape[1])]
        assert [r[0] for r in rows] == [names[k] for k in probs.argmax(-1)]
        np.testing.assert_allclose([float(r[1]) for r in rows], probs.max(-1), atol=1e-6)


def sequence_model(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    model = export(tmp_path, SOFTMAX, "categorical_crossentropy", ["a", "b", "c"], sequences=True)
    lengths = np.array([4, 1, 2, 4, 3])
    np.savez(tmp_path / "in.npz", x=X, lengths=lengths)
    return model, tmp_path / "in.npz", lengths


def test_per_step_outputs_cover_real_steps_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model, data, lengths = sequence_model(tmp_path)
    y = Predictor(model).run(X, lengths)
    assert main(["predict", str(model), str(data)]) == 0
    header, wide = table(capsys.readouterr().out)
    assert header == ["label", "probability", "p_a", "p_b", "p_c"]
    for row, length, out in zip(wide, lengths, y, strict=True):
        assert row[0].split() == ["abc"[k] for k in out[:length].argmax(-1)]  # one value per real step
        np.testing.assert_allclose([float(v) for v in row[4].split()], out[:length, 2], atol=1e-6)
    assert main(["predict", str(model), str(data), "--format", "long"]) == 0
    header, long = table(capsys.readouterr().out)
    assert header == ["row", "step", "label", "probability", "p_a", "p_b", "p_c"]
    assert [(int(r[0]), int(r[1])) for r in long] == [(i, t) for i, n in enumerate(lengths) for t in range(n)]
    assert [r[2:] for r in long if r[0] == "1"] == [[w.split()[0] for w in wide[1]]]


def test_npz_and_npy_keep_the_raw_arrays(tmp_path: Path) -> None:
    model, data, lengths = sequence_model(tmp_path)
    y = Predictor(model).run(X, lengths)
    assert main(["predict", str(model), str(data), "-o", str(tmp_path / "out.npz"), "--batch-size", "2"]) == 0
    with np.load(tmp_path / "out.npz") as out:
        assert sorted(out.files) == ["lengths", "y"]
        np.testing.assert_allclose(out["y"], y, atol=1e-6)
        np.testing.assert_array_equal(out["lengths"], lengths)
    assert main(["predict", str(model), str(data), "-o", str(tmp_path / "out.npy"), "--batch-size", "2"]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), y, atol=1e-6)


USAGE = [
    ("long of one output per sequence", False, ["--format", "long"], "--format long is for per-step outputs"),
    ("long into an array file", True, ["--format", "long", "-o", "out.npz"], "--format long is for CSV output"),
    ("unknown output", True, ["-o", "out.json"], "-o out.json: unknown output format (use a name ending in .csv, .npy, .npz, .parquet)"),
]


@pytest.mark.parametrize(("what", "sequences", "extra", "message"), USAGE, ids=[u[0] for u in USAGE])
def test_formats_that_do_not_fit_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                        what: str, sequences: bool, extra: list[str], message: str) -> None:
    model = export(tmp_path, SOFTMAX, "categorical_crossentropy", sequences=sequences)
    np.save(tmp_path / "in.npy", X)
    monkeypatch.chdir(tmp_path)
    assert main(["predict", str(model), "in.npy", *extra]) == 2
    assert capsys.readouterr().err.startswith(message)


# --- ends: a reader that leaves, an error after rows went out, a model that miscounts ----


def test_a_reader_that_leaves_early_ends_it_quietly(tmp_path: Path) -> None:
    model = export(tmp_path, SOFTMAX, "categorical_crossentropy")
    np.save(tmp_path / "big.npy", np.zeros((20_000, 1, 2), np.float32))  # ~600 KB of CSV: far past a pipe's buffer
    shell = f"{sys.executable} -m rnnc predict {model} {tmp_path / 'big.npy'} | head -1; echo \"status ${{PIPESTATUS[0]}}\""
    done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, check=False, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.stdout.splitlines() == ["label,probability,p_0,p_1,p_2", "status 0"]
    assert done.stderr == ""


def failing_after(batches: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Predictor.run raises a DataError from its `batches + 1`-th call on."""
    real, calls = Predictor.run, []

    def run(self: Predictor, x: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        calls.append(1)
        if len(calls) > batches:
            raise DataError("token ids must lie in [0, 9]")
        return real(self, x, lengths)

    monkeypatch.setattr(Predictor, "run", run)


def test_an_error_after_rows_went_to_stdout_says_how_many(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    model = export(tmp_path, SOFTMAX, "categorical_crossentropy")
    np.save(tmp_path / "in.npy", X)
    failing_after(2, monkeypatch)
    assert main(["predict", str(model), str(tmp_path / "in.npy"), "--batch-size", "2"]) == 2
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 1 + 4
    assert err == f"{tmp_path / 'in.npy'}: token ids must lie in [0, 9]; 4 of 5 rows were written before this error\n"


def test_an_error_with_o_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    model = export(tmp_path, SOFTMAX, "categorical_crossentropy")
    np.save(tmp_path / "in.npy", X)
    failing_after(2, monkeypatch)
    for out in ("out.csv", "out.npz", "out.npy"):
        assert main(["predict", str(model), str(tmp_path / "in.npy"), "--batch-size", "2", "-o", str(tmp_path / out)]) == 2
        assert capsys.readouterr().err == f"{tmp_path / 'in.npy'}: token ids must lie in [0, 9]\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy", "m.onnx"]


def test_a_model_that_drops_a_row_is_an_artifact_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    model = export(tmp_path, SOFTMAX, "categorical_crossentropy")
    np.save(tmp_path / "in.npy", X)
    real = Predictor.run
    monkeypatch.setattr(Predictor, "run", lambda self, x, lengths=None: real(self, x, lengths)[1:])
    assert main(["predict", str(model), str(tmp_path / "in.npy"), "-o", str(tmp_path / "out.csv")]) == 2
    assert capsys.readouterr().err == f"{model}: gave 4 outputs for a batch of 5 sequences\n"
    assert not (tmp_path / "out.csv").exists()


def csv_writer(handle: io.StringIO) -> CsvWriter:
    return CsvWriter(handle, Columns(("y",), lambda y: np.char.mod("%g", y)), 3, "m.onnx")


def array_writer(handle: io.BytesIO) -> ArrayWriter:
    return ArrayWriter(handle, 3, "m.onnx", npz=True, lengths=False)


WRITERS = [("csv", csv_writer, io.StringIO), ("npz", array_writer, io.BytesIO)]
COUNTS = [
    ("one row too many", [2, 2], "m.onnx: gave 4 or more output rows for 3 input rows"),
    ("one row too few", [2], "m.onnx: gave 2 output rows for 3 input rows"),
]


@pytest.mark.parametrize(("kind", "make", "buffer"), WRITERS, ids=[w[0] for w in WRITERS])
@pytest.mark.parametrize(("what", "batches", "message"), COUNTS, ids=[c[0] for c in COUNTS])
def test_writers_hold_the_model_to_the_inputs_row_count(kind, make, buffer, what: str, batches: list[int], message: str) -> None:
    writer = make(buffer())
    with pytest.raises(ArtifactError) as caught:
        for n in batches:
            writer.write(np.zeros((n, 1), np.float32))
        writer.finish()
    writer.close()
    assert str(caught.value) == message
