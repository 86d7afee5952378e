"""The order of text labels as classes: by value when every label is a plainly written
integer, else as strings; the order travels into the run's weights and model.onnx."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import yaml
from safetensors import safe_open

from rnnc.cli import main
from rnnc.data import load_file, load_training_data
from rnnc.data_text import class_order
from rnnc.spec import model_from_mapping


@pytest.mark.parametrize(
    ("labels", "classes"),
    [
        (["1", "2", "10"], ("1", "2", "10")),
        (["10", "2", "1", "2", "10"], ("1", "2", "10")),  # duplicates and input order do not matter
        (["0", "9", "10", "11", "100"], ("0", "9", "10", "11", "100")),
        (["-1", "1", "0", "-10"], ("-10", "-1", "0", "1")),
        (["pos", "neg"], ("neg", "pos")),
        (["2", "10", "other"], ("10", "2", "other")),  # a word among numbers: strings throughout
        (["1.5", "2", "10"], ("1.5", "10", "2")),  # a decimal is not an integer label
        (["07", "10", "8"], ("07", "10", "8")),  # leading zero: not plain, strings throughout
        (["01", "02", "10"], ("01", "02", "10")),  # zero-padded ids already sort as strings
        (["+3", "10"], ("+3", "10")),
        (["1_000", "2"], ("1_000", "2")),
        (["-0", "1"], ("-0", "1")),
        ([" 2", "10"], (" 2", "10")),
        (["٣", "10"], ("10", "٣")),  # int() reads other scripts' digits; str(int()) does not give them back
    ],
)
def test_class_order(labels: list[str], classes: tuple[str, ...]) -> None:
    assert class_order(labels) == classes


def spec() -> dict[str, Any]:
    return {
        "rnnc": 1,
        "name": "labels",
        "input": {"shape": [None], "dtype": "int64"},
        "layers": [
            {"type": "embedding", "vocab_size": 12, "dim": 4, "mask_zero": True},
            {"type": "gru", "units": 4},
            {"type": "dense", "units": 3, "activation": "softmax"},
        ],
        "loss": "sparse_categorical_crossentropy",
        "optimizer": "adam",
        "training": {"epochs": 1, "batch_size": 4},
        "data": {"train": "train.csv", "text": {"tokenizer": "word", "max_vocab": 10, "max_length": 4}},
    }


ROWS = "text,label\nten ten,10\ntwo,2\none,1\nten,10\ntwo two,2\n"


def test_label_10_is_the_last_class_of_labels_1_2_10(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text(ROWS)
    model = model_from_mapping(spec(), "spec.yaml", base=tmp_path)
    data = load_training_data(model)
    assert data.train.classes == ("1", "2", "10")
    assert data.train.y.tolist() == [2, 1, 0, 2, 1] and data.train.y.dtype == np.int64
    again = load_file(model, tmp_path / "train.csv", vocab=data.vocab, classes=data.train.classes)
    assert again.y.tolist() == data.train.y.tolist()


def test_a_run_stores_the_numeric_order_in_its_weights_and_model(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    (tmp_path / "train.csv").write_text(ROWS)
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec()))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            assert main(["train", str(tmp_path / "spec.yaml"), "-o", str(tmp_path / "run"), "--no-progress"]) == 0
    finally:
        torch.set_num_threads(threads)
    with safe_open(str(tmp_path / "run" / "weights.safetensors"), "np") as weights:
        assert json.loads(weights.metadata()["classes"]) == ["1", "2", "10"]
    props = {p.key: p.value for p in onnx.load(tmp_path / "run" / "model.onnx").metadata_props}
    assert json.loads(props["classes"]) == ["1", "2", "10"]
