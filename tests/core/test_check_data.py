"""`rnnc check` reads the data files' headers and places each problem in the spec.

Every case is a spec, the data file it names and the exact lines `rnnc check` prints:
`FILE:LINE:COL: setting: data file: what training would say`. The arrays are never
loaded: a file whose header promises gigabytes it does not hold passes in milliseconds.
"""

from __future__ import annotations

import io
import errno
import json
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rnnc.cli import main
from rnnc.data_peek import PEEK_BYTES, npz_headers

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "specs").glob("*.yaml")) + sorted((ROOT / "examples").glob("*/spec.yaml"))

SEED = """\
rnnc: 1
name: seed
input:
  shape: [10, 1]
layers:
  - type: simple_rnn
    units: 32
  - type: dense
    units: 1
    activation: sigmoid
loss: binary_crossentropy
optimizer: adam
data:
  train: data/train.npz
"""  # its positions: input.shape 4:10, layers[1].units 9:12, loss 11:7, data.train 14:10

TOKENS = """\
rnnc: 1
name: tokens
input: {shape: [null], dtype: int64}
layers:
  - {type: embedding, vocab_size: 20, dim: 8, mask_zero: true}
  - {type: gru, units: 8}
  - {type: dense, units: 3, activation: softmax}
loss: sparse_categorical_crossentropy
optimizer: adam
training: {validation_split: 0.5}
data:
  train: data/train.npz
"""

SERIES = """\
rnnc: 1
name: series
input: {shape: [4, 1]}
layers:
  - {type: gru, units: 8}
  - {type: dense, units: 1}
loss: mse
optimizer: adam
data:
  train: data/series.csv
  csv: {features: [value], targets: [value], window: 4}
"""

TEXT = """\
rnnc: 1
name: text
input: {shape: [null], dtype: int64}
layers:
  - {type: embedding, vocab_size: 66, dim: 8, mask_zero: true}
  - {type: gru, units: 8}
  - {type: dense, units: 3, activation: softmax}
loss: sparse_categorical_crossentropy
optimizer: adam
data:
  train: data/words.jsonl
  validation: data/words.csv
  text: {column: word, label: language, max_vocab: 64, max_length: 16}
"""

GOOD_TEXT = {"words.jsonl": '{"word": "hallo", "language": "de"}\n', "words.csv": "word,language\nhello,en\n"}


def f32(*shape: int) -> np.ndarray:
    return np.zeros(shape, np.float32)


def check(tmp_path: Path, spec: str, files: dict[str, bytes | str | dict[str, np.ndarray]], *sets: str,
          save: Callable[..., None] = np.savez) -> tuple[int, list[str]]:
    """Write the spec and its data files, run `rnnc check -q`, return (status, stderr lines)."""
    (tmp_path / "data").mkdir(exist_ok=True)
    for name, content in files.items():
        target = tmp_path / "data" / name
        if isinstance(content, dict):
            save(target, **content)
        elif isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    (tmp_path / "spec.yaml").write_text(spec)
    argv = ["check", "-q", str(tmp_path / "spec.yaml"), *(arg for s in sets for arg in ("--set", s))]
    capture = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stderr", capture)
        status = main(argv)
    prefix = f"{tmp_path / 'spec.yaml'}:"
    return status, [line.removeprefix(prefix) for line in capture.getvalue().splitlines()]


NPZ_CASES = {
    "timesteps": ({"x": f32(8, 12, 1), "y": f32(8)},
                  ["4:10: input.shape: data/train.npz: x has 12 timesteps, the spec's input needs 10 ([N, 10, 1])"]),
    "features": ({"x": f32(8, 10, 3), "y": f32(8)},
                 ["4:10: input.shape: data/train.npz: x has 3 features per step, the spec's input needs 1 ([N, 10, 1])"]),
    "rank": ({"x": f32(8, 10), "y": f32(8)},
             ["4:10: input.shape: data/train.npz: x has shape [8, 10], the spec's input needs [N, 10, 1]"]),
    "three classes for one sigmoid unit": (
        {"x": f32(8, 10, 1), "y": f32(8, 3)},
        ["9:12: layers[1].units: data/train.npz: y has shape [8, 3], binary_crossentropy over the model's output [1] needs [N] or [N, 1]"]),
    "row counts": ({"x": f32(8, 10, 1), "y": f32(7)},
                   ["14:10: data.train: data/train.npz: x has 8 samples but y has 7 samples"]),
    "no samples": ({"x": f32(0, 10, 1), "y": f32(0)}, ["14:10: data.train: data/train.npz: holds no samples"]),
    "lengths shape": ({"x": f32(8, 10, 1), "y": f32(8), "lengths": np.full((8, 1), 10)},
                      ["14:10: data.train: data/train.npz: lengths has shape [8, 1], expected one length per sample [8]"]),
    "lengths dtype": ({"x": f32(8, 10, 1), "y": f32(8), "lengths": np.full(8, 10.0)},
                      ["14:10: data.train: data/train.npz: lengths has dtype float64, expected integers"]),
    "classes": ({"x": f32(8, 10, 1), "y": f32(8), "classes": np.array(["a", "b", "c"])},
                ["14:10: data.train: data/train.npz: classes names 3 classes, the model outputs 2"]),
    "labels are text": ({"x": f32(8, 10, 1), "y": np.array(["yes"] * 8)},
                        ["11:7: loss: data/train.npz: y has dtype <U3, expected numbers"]),
    "no y": ({"x": f32(8, 10, 1), "labels": f32(8)},
             ["14:10: data.train: data/train.npz: no array 'y' (arrays: labels, x); a .npz needs x, y and optionally lengths, classes"]),
    "pickled": ({"x": f32(8, 10, 1), "y": np.array([{}] * 8, dtype=object)},
                ["14:10: data.train: data/train.npz: holds pickled or object arrays, which rnnc never loads"]),
    "all together": ({"x": f32(8, 12, 1), "y": f32(7, 3)}, [
        "4:10: input.shape: data/train.npz: x has 12 timesteps, the spec's input needs 10 ([N, 10, 1])",
        "9:12: layers[1].units: data/train.npz: y has shape [7, 3], binary_crossentropy over the model's output [1] needs [N] or [N, 1]",
        "14:10: data.train: data/train.npz: x has 8 samples but y has 7 samples",
    ]),
}


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed], ids=["stored", "compressed"])
@pytest.mark.parametrize("case", NPZ_CASES)
def test_npz_headers_against_the_seed_spec(case: str, save: Callable[..., None], tmp_path: Path) -> None:
    arrays, expected = NPZ_CASES[case]
    assert check(tmp_path, SEED, {"train.npz": arrays}, save=save) == (2, expected)


def test_one_label_per_sample_for_two_units_is_the_units_to_fix(tmp_path: Path) -> None:
    arrays = {"x": f32(8, 10, 1), "y": f32(8)}
    assert check(tmp_path, SEED, {"train.npz": arrays}, "layers.1.units=2") == (2, [
        "--set layers.1.units=2: layers[1].units: data/train.npz: y has shape [8], "
        "binary_crossentropy over the model's output [2] needs [N, 2]"])


TOKEN_CASES = {
    "float x for an embedding": (
        {"x": f32(8, 5), "y": np.zeros(8, np.int64)},
        ["3:31: input.dtype: data/train.npz: x has dtype float32, the spec's input needs integer token ids (int64)"]),
    "one-hot labels for class ids": (
        {"x": np.ones((8, 5), np.int64), "y": f32(8, 3)},
        ["8:7: loss: data/train.npz: y has shape [8, 3], sparse_categorical_crossentropy over the model's output [3] needs integer class ids [N]"]),
    "too few rows to split": (
        {"x": np.ones((1, 5), np.int64), "y": np.zeros(1, np.int64)},
        ["10:30: training.validation_split: data/train.npz: validation_split 0.5 of 1 samples leaves no training samples"]),
}


@pytest.mark.parametrize("case", TOKEN_CASES)
def test_npz_headers_against_a_token_spec(case: str, tmp_path: Path) -> None:
    arrays, expected = TOKEN_CASES[case]
    assert check(tmp_path, TOKENS, {"train.npz": arrays}) == (2, expected)


CSV_CASES = {
    "target column missing": ("date,level\n2020-01-01,1.5\n", (), [
        "11:20: data.csv.features[0]: data/series.csv: data.csv.features names column 'value', but the file has: date, level",
        "11:38: data.csv.targets[0]: data/series.csv: data.csv.targets names column 'value', but the file has: date, level",
    ]),
    "first row not a number": ("date,value\n2020-01-01,n/a\n2020-01-02,1\n", (),
                               ["10:10: data.train: data/series.csv:2: column 'value': 'n/a' is not a number"]),
    "first row short": ("date,value\n2020-01-01\n", (), ["10:10: data.train: data/series.csv:2: 1 columns, the header has 2"]),
    "empty": ("", (), ["10:10: data.train: data/series.csv: is empty (expected a header of column names, then one row per timestep)"]),
    "more targets than units": ("date,value,load\n2020-01-01,1,2\n", ("data.csv.targets=[value, load]",),
                                ["--set data.csv.targets=[value, load]: data.csv.targets: data.csv.targets names 2 columns, the last layer has 1 unit"]),
    "every column a feature": ("date,value\n2020-01-01,1\n", ("data.csv={targets: [value], window: 4}",), [
        "--set data.csv={targets: [value], window: 4}: data.csv: data/series.csv: without data.csv.features every column is a "
        "feature, and the file has 2 (date, value); input.shape[1] is 1",
        "10:10: data.train: data/series.csv:2: column 'date': '2020-01-01' is not a number",
    ]),
}


@pytest.mark.parametrize("case", CSV_CASES)
def test_series_csv_header_and_first_row(case: str, tmp_path: Path) -> None:
    content, sets, expected = CSV_CASES[case]
    assert check(tmp_path, SERIES, {"series.csv": content}, *sets) == (2, expected)


TEXT_CASES = {
    "jsonl first record lacks the text key": ({"words.jsonl": '\n{"text": "hallo", "language": "de"}\n'},
                                              ["13:18: data.text.column: data/words.jsonl:2: no field 'word' (fields: text, language)"]),
    "jsonl first line not JSON": ({"words.jsonl": '{"word": "hallo",\n'},
                                  ["11:10: data.train: data/words.jsonl:1: not valid JSON (Expecting property name enclosed in double quotes)"]),
    "jsonl empty": ({"words.jsonl": "\n\n"}, ["11:10: data.train: data/words.jsonl: holds no rows of text"]),
    "csv lacks the label column": ({"words.csv": "word,lang\nhello,en\n"},
                                   ["13:31: data.text.label: data/words.csv: data.text.label names column 'language', but the file has: word, lang"]),
}


@pytest.mark.parametrize("case", TEXT_CASES)
def test_text_header_and_first_record(case: str, tmp_path: Path) -> None:
    files, expected = TEXT_CASES[case]
    assert check(tmp_path, TEXT, {**GOOD_TEXT, **files}) == (2, expected)


def test_a_first_record_past_the_peek_is_left_to_training(tmp_path: Path) -> None:
    long_line = json.dumps({"text": "a" * PEEK_BYTES, "language": "de"}) + "\n"
    assert check(tmp_path, TEXT, {**GOOD_TEXT, "words.jsonl": long_line}) == (0, [])


def test_a_byte_order_mark_is_no_part_of_a_header(tmp_path: Path) -> None:
    """Excel's "CSV UTF-8" starts with a BOM; training drops it, so the check does too."""
    bom = "\ufeff"
    text = {name: bom + content for name, content in GOOD_TEXT.items()}
    assert check(tmp_path, TEXT, text) == (0, [])
    assert check(tmp_path, SERIES, {"series.csv": bom + "value,date\n1,2020-01-01\n"}) == (0, [])


def test_good_text_files_pass(tmp_path: Path) -> None:
    assert check(tmp_path, TEXT, GOOD_TEXT) == (0, [])


@pytest.mark.parametrize("spec", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_spec_passes_with_its_data(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-q", str(spec)]) == 0
    assert capsys.readouterr() == ("", "")


def npy_header_only(shape: tuple[int, ...]) -> bytes:
    """A `.npy` header for float32 `shape`, and none of the data it promises."""
    header = repr({"descr": "<f4", "fortran_order": False, "shape": shape}).encode()
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED], ids=["stored", "compressed"])
def test_headers_are_read_without_the_arrays(compression: int, tmp_path: Path) -> None:
    """x claims 40 GB here: loading it would fail, reading its header does not."""
    path = tmp_path / "data" / "train.npz"
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr("x.npy", npy_header_only((10**9, 10, 1)))
        archive.writestr("y.npy", npy_header_only((10**9,)))
    headers = npz_headers(path, "train.npz")
    assert {name: (h.shape, str(h.dtype)) for name, h in headers.items()} == {
        "x": ((10**9, 10, 1), "float32"), "y": ((10**9,), "float32")}
    assert check(tmp_path, SEED, {}) == (0, [])


def test_a_member_that_is_not_an_array(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.npy", npy_header_only((8, 10, 1)))
        archive.writestr("notes.txt", "hello")
    assert check(tmp_path, SEED, {"train.npz": buffer.getvalue()}) == (
        2, ["14:10: data.train: data/train.npz: 'notes.txt' is not a numpy array (write the file with numpy.savez)"])


def npy_with_header(text: str) -> bytes:
    """A `.npy` member whose header dictionary is `text`, padded as numpy pads it."""
    body = text.ljust(117) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body.encode("latin1")


DAMAGED_HEADERS = {  # what numpy's header parser raises on each: not all of it is a ValueError
    "unterminated_string": ("{'descr': '<f4', 'fortran_order': False, 'shape': (8, '''", "EOF in multi-line string"),
    "unclosed_paren": ("{'descr': '<f4', 'fortran_order': False, 'shape': (8, (10, 1), }", "EOF in multi-line statement"),
    "negative_dimension": ("{'descr': '<f4', 'fortran_order': False, 'shape': (-8, 10, 1), }", "(-8, 10, 1) is not whole numbers"),
}


@pytest.mark.parametrize("case", DAMAGED_HEADERS)
def test_a_damaged_header_is_one_line(case: str, tmp_path: Path) -> None:
    """The header reader `rnnc predict` uses (`rnnc.npy_header`): a tokenizer error is no traceback here either."""
    text, fragment = DAMAGED_HEADERS[case]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.npy", npy_with_header(text))
        archive.writestr("y.npy", npy_header_only((8,)))
    status, lines = check(tmp_path, SEED, {"train.npz": buffer.getvalue()})
    assert status == 2 and len(lines) == 1, lines
    assert lines[0].startswith("14:10: data.train: data/train.npz: 'x' ") and fragment in lines[0], lines
    assert "((" not in lines[0], lines  # the tokenizer's message, not its arguments' tuple


def test_an_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As a file without read permission reads to anyone but root (who runs these tests here)."""
    opened = Path.open

    def refuse_csv(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self.suffix == ".csv" and "w" not in (args[0] if args else kwargs.get("mode", "r")):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return opened(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse_csv)
    assert check(tmp_path, SERIES, {"series.csv": "date,value\n2020-01-01,1\n"}) == (
        2, ["10:10: data.train: data/series.csv: cannot read (Permission denied)"])


def test_data_problems_come_after_the_spec_is_valid(tmp_path: Path) -> None:
    """A spec problem is reported alone: its data cannot be judged against a broken model."""
    status, lines = check(tmp_path, SEED.replace("units: 1\n", "units: 0\n"), {"train.npz": {"x": f32(8, 12, 1), "y": f32(8)}})
    assert (status, len(lines)) == (2, 1) and lines[0].startswith("9:12: layers[1].units: ")
