"""`rnnc predict RUN_DIR|MODEL INPUT` reads what `rnnc train` reads: a series `.csv` by the
spec's `data.csv`, raw text `.csv`/`.jsonl` by its `data.text` (labels and targets absent
or ignored), with the spec from the run directory, beside the model or `--spec`."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rnnc import ir
from rnnc.cli import main
from rnnc.initial import initial_weights
from rnnc.runtime import Predictor
from rnnc.spec import model_from_mapping
from rnnc.text import Vocab

rnnc_onnx = pytest.importorskip("rnnc_onnx")

SERIES = {
    "rnnc": 1, "name": "load", "input": {"shape": [3, 2]},
    "layers": [{"type": "gru", "units": 4}, {"type": "dense", "units": 1}], "loss": "mse", "optimizer": "adam",
}
SERIES_DATA = {"train": "gone.csv", "csv": {"features": ["temp", "hum"], "targets": ["load"], "window": 3}}
TEXT = {
    "rnnc": 1, "name": "reviews", "input": {"shape": [None], "dtype": "int64"},
    "layers": [{"type": "embedding", "vocab_size": 20, "dim": 4, "mask_zero": True}, {"type": "lstm", "units": 4},
               {"type": "dense", "units": 1, "activation": "sigmoid"}],
    "loss": "binary_crossentropy", "optimizer": "adam",
}
TEXT_DATA = {"train": "gone.csv", "text": {"column": "review", "label": "stars", "tokenizer": "char", "max_vocab": 15}}
VOCAB = Vocab.build(["a fine film, not bad"], ir.TextData(tokenizer="char", max_vocab=15))

SERIES_CSV = """date,temp,hum,load,note
2024-01-01,1.0,0.5,10,a
2024-01-02,2.0,0.4,11,b
2024-01-03,1.5,0.6,12,
2024-01-04,0.5,0.7,13,d
2024-01-05,3.0,0.2,14,e
"""


def run_dir(folder: Path, spec: dict, data: dict, **export: object) -> Path:
    """A run directory as `rnnc train` leaves it: spec.yaml (its data files long gone) and model.onnx."""
    folder.mkdir()
    model = model_from_mapping(spec)
    rnnc_onnx.export(model, initial_weights(model), folder / "model.onnx", **export)
    (folder / "spec.yaml").write_text(json.dumps({**spec, "data": data}))
    return folder


def predict(capsys: pytest.CaptureFixture[str], *args: str) -> list[list[str]]:
    assert main(["predict", *args]) == 0, capsys.readouterr().err
    return list(csv.reader(io.StringIO(capsys.readouterr().out)))


def test_a_series_csv_is_windowed_by_the_specs_data_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = run_dir(tmp_path / "run", SERIES, SERIES_DATA)
    (tmp_path / "series.csv").write_text(SERIES_CSV)
    header, *rows = predict(capsys, str(run), str(tmp_path / "series.csv"))
    # the columns neither fed nor predicted name each window by its last row; targets are named
    assert header == ["date", "note", "load"]
    assert [r[:2] for r in rows] == [["2024-01-03", ""], ["2024-01-04", "d"], ["2024-01-05", "e"]]
    values = np.array([[1.0, 0.5], [2.0, 0.4], [1.5, 0.6], [0.5, 0.7], [3.0, 0.2]], np.float32)
    windows = np.stack([values[i : i + 3] for i in range(3)])  # every full window, the last one forecasting
    want = Predictor(run / "model.onnx").run(windows)
    np.testing.assert_allclose([float(r[2]) for r in rows], want[:, 0], rtol=1e-6)


def test_a_series_without_its_target_column_predicts_the_same(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = run_dir(tmp_path / "run", SERIES, SERIES_DATA)
    (tmp_path / "with.csv").write_text(SERIES_CSV)
    (tmp_path / "without.csv").write_text("".join(",".join(line.split(",")[:3]) + "\n" for line in SERIES_CSV.splitlines()))
    with_target = predict(capsys, str(run), str(tmp_path / "with.csv"))
    without = predict(capsys, str(run), str(tmp_path / "without.csv"))
    assert without[0] == ["date", "load"] and [r[-1] for r in without] == [r[-1] for r in with_target]


TEXT_INPUTS = [
    ("csv with labels", "in.csv", 'review,stars\na fine film,pos\n"not bad, at all",neg\n'),
    ("csv without labels", "in.csv", 'stars_unknown,review\n?,a fine film\n?,"not bad, at all"\n'),
    ("jsonl without labels", "in.jsonl", '{"review": "a fine film"}\n{"review": "not bad, at all", "stars": "x"}\n'),
]


@pytest.mark.parametrize(("what", "name", "content"), TEXT_INPUTS, ids=[c[0] for c in TEXT_INPUTS])
def test_raw_text_is_read_by_the_specs_data_text(tmp_path: Path, capsys: pytest.CaptureFixture[str], what: str, name: str, content: str) -> None:
    run = run_dir(tmp_path / "run", TEXT, TEXT_DATA, classes=["neg", "pos"], vocab=VOCAB)
    (tmp_path / name).write_text(content)
    header, *rows = predict(capsys, str(run), str(tmp_path / name))
    assert header == ["review", "label", "probability", "p_pos"]  # the text column first, by its name
    texts = ["a fine film", "not bad, at all"]
    assert [r[0] for r in rows] == texts
    p = Predictor(run / "model.onnx").predict_texts(texts)[:, 0]
    np.testing.assert_allclose([float(r[3]) for r in rows], p, atol=1e-6)
    assert [r[1] for r in rows] == ["pos" if v > 0.5 else "neg" for v in p]


def test_a_run_directory_a_model_beside_its_spec_and_spec_agree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = run_dir(tmp_path / "run", SERIES, SERIES_DATA)
    (tmp_path / "series.csv").write_text(SERIES_CSV)
    shutil.copy(run / "model.onnx", tmp_path / "alone.onnx")
    data = str(tmp_path / "series.csv")
    by_dir = predict(capsys, str(run), data)
    assert predict(capsys, str(run / "model.onnx"), data) == by_dir
    assert predict(capsys, str(tmp_path / "alone.onnx"), data, "--spec", str(run / "spec.yaml")) == by_dir


def test_npz_input_names_the_specs_targets_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = run_dir(tmp_path / "run", SERIES, SERIES_DATA)
    np.savez(tmp_path / "in.npz", x=np.zeros((2, 3, 2), np.float32))
    header, *rows = predict(capsys, str(run), str(tmp_path / "in.npz"))
    assert header == ["load"] and len(rows) == 2


ERRORS = [
    ("series csv, no spec", "alone", "s.csv", SERIES_CSV,
     "s.csv:2: '2024-01-01' is not a number (a series .csv needs the spec's data.csv settings, "
     "a raw-text .csv its data.text: pass the run directory or --spec)"),
    ("jsonl, no spec", "alone", "t.jsonl", '{"review": "x"}\n', "t.jsonl: a .jsonl input holds raw text, read with the spec's data.text"),
    ("jsonl, spec without data.text", "run", "t.jsonl", '{"review": "x"}\n', "t.jsonl: a .jsonl input holds raw text, but "),
    ("series too short", "run", "s.csv", "date,temp,hum\nmon,1,2\n", "s.csv: 1 rows are too few for one window of 3 (data.csv.window)"),
    ("series feature missing", "run", "s.csv", "date,temp\nmon,1\n", "s.csv: data.csv.features names column 'hum', but the file has: date, temp"),
    ("a missing spec", "--spec", "s.csv", SERIES_CSV, "nowhere.yaml: no such spec"),
]


@pytest.mark.parametrize(("what", "target", "name", "content", "message"), ERRORS, ids=[c[0] for c in ERRORS])
def test_unreadable_inputs_say_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                          what: str, target: str, name: str, content: str, message: str) -> None:
    run = run_dir(tmp_path / "run", SERIES, SERIES_DATA)
    shutil.copy(run / "model.onnx", tmp_path / "alone.onnx")
    (tmp_path / name).write_text(content)
    monkeypatch.chdir(tmp_path)
    args = {"alone": ["alone.onnx"], "run": ["run"], "--spec": ["alone.onnx", "--spec", "nowhere.yaml"]}[target]
    assert main(["predict", args[0], name, *args[1:], "-o", "out.csv"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message), err
    assert not (tmp_path / "out.csv").exists()
