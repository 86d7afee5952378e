"""`rnnc predict MODEL.onnx lines.txt` for raw-text models of every output kind, on
exported (untrained) models: no torch needed."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest

from rnnc import ir
from rnnc.cli import main
from rnnc.errors import DataError
from rnnc.initial import initial_weights
from rnnc.runtime import Predictor
from rnnc.spec import model_from_mapping
from rnnc.text import Vocab

rnnc_onnx = pytest.importorskip("rnnc_onnx")


def export(tmp_path: Path, last: dict, loss: object, classes: list[str] | None) -> Path:
    model = model_from_mapping({
        "rnnc": 1, "name": "t", "input": {"shape": [None], "dtype": "int64"},
        "layers": [{"type": "embedding", "vocab_size": 12, "dim": 4, "mask_zero": True}, {"type": "gru", "units": 4}, last],
        "loss": loss, "optimizer": "adam",
    })
    vocab = Vocab.build(["a small test"], ir.TextData(tokenizer="char", max_vocab=10))
    path = tmp_path / "m.onnx"
    rnnc_onnx.export(model, initial_weights(model), path, classes=classes, vocab=vocab)
    return path


CASES = [
    ("softmax", {"type": "dense", "units": 3, "activation": "softmax"}, "sparse_categorical_crossentropy", ["x", "y", "z"]),
    ("logits", {"type": "dense", "units": 3}, {"type": "sparse_categorical_crossentropy", "from_logits": True}, ["x", "y", "z"]),
    ("sigmoid", {"type": "dense", "units": 1, "activation": "sigmoid"}, "binary_crossentropy", ["no", "yes"]),
]


@pytest.mark.parametrize(("what", "last", "loss", "classes"), CASES, ids=[c[0] for c in CASES])
def test_labels_with_the_probability_of_the_chosen_class(tmp_path: Path, capsys: pytest.CaptureFixture[str], what, last, loss, classes) -> None:
    model = export(tmp_path, last, loss, classes)
    (tmp_path / "in.txt").write_text("a test\nsmall, unknown words\n")
    assert main(["predict", str(model), str(tmp_path / "in.txt")]) == 0
    header, *rows = csv.reader(io.StringIO(capsys.readouterr().out))
    shown = classes[1:] if what == "sigmoid" else classes  # one sigmoid unit: the probability of class 1
    assert header == ["text", "label", "probability", *(f"p_{c}" for c in shown)] and len(rows) == 2
    y = Predictor(model).predict_texts(["a test", "small, unknown words"])
    for (text, label, p, *each), row in zip(rows, y, strict=True):
        probs = np.concatenate([1 - row, row]) if len(row) == 1 else row
        if what == "logits":
            probs = np.exp(row) / np.exp(row).sum()
        assert label == classes[int(probs.argmax())] and float(p) == pytest.approx(probs.max(), abs=1e-6)
        np.testing.assert_allclose([float(v) for v in each], probs[1:] if what == "sigmoid" else probs, atol=1e-6)
    assert [r[0] for r in rows] == ["a test", "small, unknown words"]  # quoted where a comma needs it


def test_a_regression_model_prints_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = export(tmp_path, {"type": "dense", "units": 2}, "mse", None)
    (tmp_path / "in.txt").write_text("a test\n")
    assert main(["predict", str(model), str(tmp_path / "in.txt")]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header == "text,y_0,y_1"
    assert row.startswith("a test,") and len(row.split(",")) == 3


def test_blank_files_and_blank_texts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = export(tmp_path, {"type": "dense", "units": 2}, "mse", None)
    (tmp_path / "in.txt").write_text("\n  \n")
    assert main(["predict", str(model), str(tmp_path / "in.txt")]) == 2
    assert capsys.readouterr().err.endswith("in.txt: no text (every line is blank)\n")
    with pytest.raises(DataError, match="text 1 is blank"):
        Predictor(model).predict_texts(["fine", " "])
