"""Raw text files (`.csv`, `.jsonl`) as samples: rnnc.data with `data.text` (numpy only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rnnc.data import load_file, load_training_data
from rnnc.errors import DataError
from rnnc.spec import model_from_mapping
from rnnc.text import UNKNOWN


def spec(tmp_path: Path, *, units: int = 1, loss: str = "binary_crossentropy", shape: list | None = None,
         data: dict[str, Any] | None = None, **training: Any) -> Any:
    activation = {"binary_crossentropy": "sigmoid", "mse": "linear"}.get(loss, "softmax")
    mapping = {
        "rnnc": 1,
        "name": "t",
        "input": {"shape": shape or [None], "dtype": "int64"},
        "layers": [
            {"type": "embedding", "vocab_size": 52, "dim": 4, "mask_zero": True},
            {"type": "gru", "units": 4},
            {"type": "dense", "units": units, "activation": activation},
        ],
        "loss": loss,
        "optimizer": "adam",
        "training": training,
        "data": {"train": "train.csv", "text": {"tokenizer": "word", "max_vocab": 50, "max_length": 6}, **(data or {})},
    }
    return model_from_mapping(mapping, "spec.yaml", base=tmp_path)


def write_csv(path: Path, rows: list[tuple[str, str]], header: str = "text,label") -> Path:
    path.write_text(header + "\n" + "".join(f'"{t}",{label}\n' for t, label in rows), encoding="utf-8")
    return path


ROWS = [("good film", "pos"), ("bad film", "neg"), ("good good plot", "pos"), ("bad plot", "neg")]


def test_csv_rows_become_ids_lengths_and_sorted_class_ids(tmp_path: Path) -> None:
    write_csv(tmp_path / "train.csv", ROWS)
    data = load_training_data(spec(tmp_path))
    assert data.vocab is not None and data.vocab.tokens == ("good", "bad", "film", "plot")  # by count, then a-z
    assert data.train.classes == ("neg", "pos")
    assert data.train.y.ravel().tolist() == [1.0, 0.0, 1.0, 0.0]
    assert data.train.x.tolist() == [[2, 4, 0], [3, 4, 0], [2, 2, 5], [3, 5, 0]]
    assert data.train.lengths.tolist() == [2, 2, 3, 2]


def test_jsonl_fields_and_numeric_labels(tmp_path: Path) -> None:
    lines = [{"body": "one two", "stars": 3}, {"body": "two", "stars": 1}, {"body": "three", "stars": 2}]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    model = spec(tmp_path, units=3, loss="sparse_categorical_crossentropy",
                 data={"train": "train.jsonl", "text": {"column": "body", "label": "stars", "tokenizer": "word", "max_vocab": 50}})
    data = load_training_data(model)
    assert data.train.classes == ("1", "2", "3")
    assert data.train.y.tolist() == [2, 0, 1] and data.train.y.dtype == np.int64


@pytest.mark.parametrize("name", ["train.csv", "train.jsonl"])
def test_a_byte_order_mark_before_text_data_is_dropped(tmp_path: Path, name: str) -> None:
    """A BOM is neither part of the `text` column's name nor a character before the first JSON record."""
    body = ("text,label\n" + "".join(f'"{t}",{label}\n' for t, label in ROWS) if name.endswith(".csv")
            else "".join(json.dumps({"text": t, "label": label}) + "\n" for t, label in ROWS))
    (tmp_path / name).write_bytes(b"\xef\xbb\xbf" + body.encode())
    data = load_training_data(spec(tmp_path, data={"train": name}))
    assert data.train.classes == ("neg", "pos")
    assert data.train.x.tolist() == [[2, 4, 0], [3, 4, 0], [2, 2, 5], [3, 5, 0]]


def test_regression_labels_are_numbers(tmp_path: Path) -> None:
    write_csv(tmp_path / "train.csv", [("a b", "0.5"), ("b", "-2")])
    data = load_training_data(spec(tmp_path, loss="mse"))
    assert data.train.classes is None
    assert data.train.y.ravel().tolist() == [0.5, -2.0]


def test_the_vocabulary_comes_from_the_training_part_only(tmp_path: Path) -> None:
    write_csv(tmp_path / "train.csv", [*ROWS, ("unseen words", "pos"), ("more unseen", "neg")])
    data = load_training_data(spec(tmp_path, validation_split=0.34))
    assert "unseen" not in data.vocab.tokens
    assert data.validation is not None and len(data.validation) == 3
    assert data.validation.x[1].tolist() == [UNKNOWN, UNKNOWN] and data.validation.origin.endswith("(last 0.34)")


def test_a_fixed_input_length_pads_every_text_to_it(tmp_path: Path) -> None:
    write_csv(tmp_path / "train.csv", ROWS)
    data = load_training_data(spec(tmp_path, shape=[6]))
    assert data.train.x.shape == (4, 6)


def test_load_file_needs_the_training_vocabulary(tmp_path: Path) -> None:
    write_csv(tmp_path / "train.csv", ROWS)
    model = spec(tmp_path)
    sets = load_training_data(model)
    with pytest.raises(DataError, match="needs the vocabulary and class names"):
        load_file(model, tmp_path / "train.csv")
    again = load_file(model, tmp_path / "train.csv", vocab=sets.vocab, classes=sets.train.classes)
    assert np.array_equal(again.x, sets.train.x)


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        ("words,label\nhi,a\n", "train.csv", "data.text.column names column 'text', but the file has: words, label"),
        ("text,label\nhi,a\n   ,b\n", "train.csv", "train.csv:3: the text ('text') is empty"),
        ("text,label\nhi,a,x\n", "train.csv", "train.csv:2: 3 columns, the header has 2"),
        ("text,label\n", "train.csv", "holds no rows of text"),
        ("text,label\nhi,a\nho,b\nhu,c\n", "train.csv", "the training labels name 3 classes (a, b, c), the model outputs 2"),
        ("text,label\nhi,a\nho,a\n", "train.csv", "the training labels name 1 classes (a), the model outputs 2"),
        ('{"text": "hi", "label": "a"}\n{"text": "ho"\n', "train.jsonl", "train.jsonl:2: not valid JSON"),
        ('{"text": "hi", "label": "a"}\n[1]\n', "train.jsonl", "train.jsonl:2: expected a JSON object per line, got list"),
        ('{"text": "hi", "label": "a"}\n{"label": "b"}\n', "train.jsonl", "train.jsonl:2: no field 'text' (fields: label)"),
        ('{"text": 5, "label": "a"}\n', "train.jsonl", "train.jsonl:1: field 'text' must be a string, got 5"),
        ('{"text": "hi", "label": null}\n', "train.jsonl", "train.jsonl:1: field 'label' must be a string or a number, got null"),
    ],
)
def test_bad_text_files_are_one_line_naming_the_place(tmp_path: Path, content: str, name: str, message: str) -> None:
    (tmp_path / name).write_text(content, encoding="utf-8")
    model = spec(tmp_path, data={"train": name})
    with pytest.raises(DataError) as caught:
        load_training_data(model)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_label_the_training_data_lacks_is_named_with_its_line(tmp_path: Path) -> None:
    write_csv(tmp_path / "train.csv", ROWS)
    write_csv(tmp_path / "val.csv", [("good", "pos"), ("meh", "neutral")])
    with pytest.raises(DataError, match=r"val\.csv:3: label 'neutral' is not a class of the training data \(neg, pos\)"):
        load_training_data(spec(tmp_path, data={"validation": "val.csv"}))


def test_a_regression_label_that_is_not_a_number(tmp_path: Path) -> None:
    write_csv(tmp_path / "train.csv", [("a", "1"), ("b", "lots")])
    with pytest.raises(DataError, match=r"train\.csv:3: label 'lots' is not a number"):
        load_training_data(spec(tmp_path, loss="mse"))
