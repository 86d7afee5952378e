"""rnnc.data: data files checked against the IR, one clear line per problem.

Every bad file must end in a `DataError` that names the file and says what is wrong,
before any training step; good files come back in the loss's one label layout.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rnnc import ir
from rnnc.data import Dataset, from_arrays, load_file, load_training_data
from rnnc.errors import DataError
from rnnc.spec import model_from_mapping

RNN_BINARY = [{"type": "simple_rnn", "units": 4}, {"type": "dense", "units": 1, "activation": "sigmoid"}]
RNN_SPARSE = [{"type": "simple_rnn", "units": 4}, {"type": "dense", "units": 3, "activation": "softmax"}]
RNN_ONEHOT = RNN_SPARSE
TAGGER = [{"type": "gru", "units": 4, "return_sequences": True}, {"type": "dense", "units": 3, "activation": "softmax"}]
TOKENS = [{"type": "embedding", "vocab_size": 10, "dim": 4, "mask_zero": True}, {"type": "lstm", "units": 4},
          {"type": "dense", "units": 1, "activation": "sigmoid"}]


def model(layers: list[dict[str, Any]], shape: list[int | None] = [10, 1], dtype: str = "float32",
          loss: str = "binary_crossentropy", **extra: Any) -> ir.Model:
    spec = {"rnnc": 1, "name": "t", "input": {"shape": shape, "dtype": dtype}, "layers": layers,
            "loss": loss, "optimizer": "adam", **extra}
    return model_from_mapping(spec)


BINARY = model(RNN_BINARY)
SPARSE = model(RNN_SPARSE, loss="sparse_categorical_crossentropy")
ONEHOT = model(RNN_ONEHOT, loss="categorical_crossentropy")
TAGS = model(TAGGER, shape=[None, 2], loss="sparse_categorical_crossentropy")
TEXT = model(TOKENS, shape=[None], dtype="int64")
FORECAST = replace(
    model([{"type": "gru", "units": 4}, {"type": "dense", "units": 1}], shape=[3, 1], loss="mse"),
    data=ir.Data(csv=ir.CsvWindows(features=("value",), targets=("value",), window=3, horizon=2)),
)

X = np.zeros((4, 10, 1), np.float32)
Y = np.array([0, 1, 1, 0], np.float32)


def npz(**arrays: Any) -> Callable[[Path], None]:
    return lambda path: np.savez(path, **arrays)


def raw(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def truncated(path: Path) -> None:
    np.savez(path, x=X, y=Y)
    path.write_bytes(path.read_bytes()[:200])


def text(body: str) -> Callable[[Path], None]:
    return lambda path: path.write_text(body)


SERIES = "step,value\n" + "".join(f"{i},{i / 10}\n" for i in range(10))

# (case, model, file name, how to write it, expected message fragment)
BAD_FILES = [
    ("missing file", BINARY, "train.npz", None, "no such file"),
    ("directory", BINARY, "train.npz", lambda p: p.mkdir(), "is a directory, not a data file"),
    ("truncated npz", BINARY, "train.npz", truncated, "not a valid .npz archive (no zip structure: truncated"),
    ("text named npz", BINARY, "train.npz", raw(b"x,y\n1,2\n"), "not a valid .npz archive"),
    ("unsupported type", BINARY, "train.txt", raw(b"1 2 3"), "unsupported data file type '.txt'"),
    ("no y", BINARY, "train.npz", npz(x=X), "no array 'y' (arrays: x)"),
    ("object arrays", BINARY, "train.npz", lambda p: np.savez(p, x=np.array([{}], dtype=object), y=Y), "pickled or object arrays"),
    ("features", BINARY, "train.npz", npz(x=np.zeros((4, 10, 2)), y=Y), "x has 2 features per step, the spec's input needs 1"),
    ("timesteps", BINARY, "train.npz", npz(x=np.zeros((4, 12, 1)), y=Y), "x has 12 timesteps, the spec's input needs 10"),
    ("rank", BINARY, "train.npz", npz(x=np.zeros((4, 10)), y=Y), "x has shape [4, 10], the spec's input needs [N, 10, 1]"),
    ("strings", BINARY, "train.npz", npz(x=np.full((4, 10, 1), "a"), y=Y), "x has dtype <U1, the spec's input needs numbers"),
    ("count mismatch", BINARY, "train.npz", npz(x=X, y=Y[:3]), "x has 4 samples but y has 3 samples"),
    ("empty", BINARY, "train.npz", npz(x=X[:0], y=Y[:0]), "holds no samples"),
    ("nan in x", BINARY, "train.npz", npz(x=np.where(np.arange(40).reshape(4, 10, 1) == 7, np.nan, 0.0), y=Y), "x holds 1 NaN or inf values (first: NaN at x[0, 7, 0])"),
    ("inf in y", BINARY, "train.npz", npz(x=X, y=np.array([0, np.inf, 1, 0])), "y holds 1 NaN or inf values"),
    ("binary labels", BINARY, "train.npz", npz(x=X, y=np.array([0, 2, 1, 0])), "binary_crossentropy needs labels in [0, 1]"),
    ("binary label shape", BINARY, "train.npz", npz(x=X, y=np.zeros((4, 2))), "y has shape [4, 2], binary_crossentropy over the model's output [1] needs [N] or [N, 1]"),
    ("class out of range", SPARSE, "train.npz", npz(x=X, y=np.array([0, 1, 3, 2])), "y holds class ids from 0 to 3, the model has 3 classes [0, 2]"),
    ("negative class", SPARSE, "train.npz", npz(x=X, y=np.array([0, -1, 1, 2])), "the model has 3 classes"),
    ("fractional class", SPARSE, "train.npz", npz(x=X, y=np.array([0, 0.5, 1, 2])), "must hold integer class ids"),
    ("sparse label shape", SPARSE, "train.npz", npz(x=X, y=np.zeros((4, 3))), "needs integer class ids [N]"),
    ("one-hot sums", ONEHOT, "train.npz", npz(x=X, y=np.full((4, 3), 0.5)), "one-hot labels must sum to 1"),
    ("one-hot shape", ONEHOT, "train.npz", npz(x=X, y=np.zeros(4)), "needs one-hot [N, 3]"),
    ("float token ids", TEXT, "train.npz", npz(x=np.ones((4, 5)), y=Y), "needs integer token ids (int64)"),
    ("ids past vocab", TEXT, "train.npz", npz(x=np.full((4, 5), 10), y=Y), "token ids must lie in [0, 9] (vocab_size 10)"),
    ("no tokens", TEXT, "train.npz", npz(x=np.array([[1, 0], [0, 0], [2, 2], [3, 0]]), y=Y), "sample 1 has no tokens"),
    ("length too long", TAGS, "train.npz", npz(x=np.zeros((2, 5, 2)), y=np.zeros((2, 5), int), lengths=np.array([6, 2])), "lengths must lie in [1, 5] (the padded time axis of x), sample 0 has length 6"),
    ("length zero", TAGS, "train.npz", npz(x=np.zeros((2, 5, 2)), y=np.zeros((2, 5), int), lengths=np.array([3, 0])), "sample 1 has length 0"),
    ("lengths shape", TAGS, "train.npz", npz(x=np.zeros((2, 5, 2)), y=np.zeros((2, 5), int), lengths=np.array([3])), "one length per sample [2]"),
    ("lengths dtype", TAGS, "train.npz", npz(x=np.zeros((2, 5, 2)), y=np.zeros((2, 5), int), lengths=np.array([3.0, 2.0])), "lengths has dtype float64"),
    ("tag label steps", TAGS, "train.npz", npz(x=np.zeros((2, 5, 2)), y=np.zeros((2, 4), int)), "needs integer class ids [N, 5]"),
    ("lengths on fixed input", BINARY, "train.npz", npz(x=X, y=Y, lengths=np.array([10, 3, 10, 10])), "the spec's input has a fixed length"),
    ("class names", BINARY, "train.npz", npz(x=X, y=Y, classes=np.array(["a", "b", "c"])), "classes names 3 classes, the model outputs 2"),
    ("csv column", FORECAST, "series.csv", text("step,temp\n1,2\n"), "names column 'value', but the file has: step, temp"),
    ("csv number", FORECAST, "series.csv", text("step,value\n1,2\n2,abc\n"), "series.csv:3: column 'value': 'abc' is not a number"),
    ("csv nan", FORECAST, "series.csv", text("step,value\n1,2\n2,nan\n"), "series.csv:3: column 'value' is nan"),
    ("csv ragged", FORECAST, "series.csv", text("step,value\n1,2\n2\n"), "series.csv:3: 1 columns, the header has 2"),
    ("csv too short", FORECAST, "series.csv", text("step,value\n1,2\n2,3\n3,4\n"), "3 rows are too few for window 3 + horizon 2"),
    ("csv empty", FORECAST, "series.csv", text(""), "is empty"),
    ("csv binary", FORECAST, "series.csv", raw(b"\xff\xfe\x00\x01"), "cannot decode it as UTF-8"),
]


@pytest.mark.parametrize(("case", "spec", "name", "write", "fragment"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_data_is_one_line_naming_the_file(tmp_path: Path, case: str, spec: ir.Model, name: str, write: Any, fragment: str) -> None:
    path = tmp_path / name
    if write is not None:
        write(path)
    with pytest.raises(DataError) as caught:
        load_file(spec, path)
    message = str(caught.value)
    assert fragment in message
    assert message.startswith(str(path))
    assert "\n" not in message


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "train.npz"
    np.savez(path, x=X, y=Y)
    path.chmod(0)
    with pytest.raises(DataError, match="cannot read"):
        load_file(BINARY, path)


def test_binary_labels_take_the_output_shape() -> None:
    data = from_arrays(BINARY, X, [0, 1, 1, 0])
    assert data.y.shape == (4, 1) and data.y.dtype == np.float32
    assert data.x.dtype == np.float32 and data.lengths is None


def test_sparse_labels_become_int64_class_ids() -> None:
    data = from_arrays(SPARSE, X, np.array([[0.0], [2.0], [1.0], [1.0]]))
    assert data.y.dtype == np.int64 and data.y.tolist() == [0, 2, 1, 1]


def test_labels_on_padded_steps_do_not_count() -> None:
    # -1 and 7 lie on padded steps: not checked, and zeroed so no loss can trip on them.
    y = np.array([[1, 2, -1, -1, 7], [0, 1, 2, 1, 0]])
    data = from_arrays(TAGS, np.zeros((2, 5, 2)), y, lengths=np.array([2, 5]))
    assert data.y.tolist() == [[1, 2, 0, 0, 0], [0, 1, 2, 1, 0]]


def test_mask_zero_lengths_come_from_the_ids() -> None:
    x = np.array([[3, 4, 0, 0], [1, 0, 2, 0], [5, 5, 5, 5]], np.int32)
    data = from_arrays(TEXT, x, [0, 1, 1])
    assert data.lengths is not None and data.lengths.tolist() == [2, 3, 4]
    assert data.x.dtype == np.int64


PRE_PADDED = [[0, 0, 3, 4], [0, 1, 2, 9], [0, 0, 0, 5]]  # Keras's pad_sequences default
LONGEST_UNPADDED = [[0, 0, 3, 4], [6, 1, 2, 9], [0, 0, 0, 5]]  # pad_sequences to the longest


@pytest.mark.parametrize(
    ("x", "lengths", "warned"),
    [
        (PRE_PADDED, None, True),
        (LONGEST_UNPADDED, None, True),
        ([[6, 1, 2, 9], [6, 1, 2, 9], [3, 3, 3, 3]], None, False),  # nothing padded
        ([[3, 4, 0, 0], [1, 2, 9, 0], [5, 0, 0, 0]], None, False),  # padded at the end
        ([[0, 0, 3, 4], [1, 2, 9, 0], [5, 0, 0, 0]], None, False),  # mixed: not pad_sequences' doing
        (PRE_PADDED, [4, 4, 4], False),  # lengths given win: the zeros are steps by the file's word
    ],
    ids=["pre-padded", "longest-unpadded", "unpadded", "post-padded", "mixed", "lengths-given"],
)
def test_a_warning_for_sequences_padded_at_the_start(capsys: pytest.CaptureFixture[str], x, lengths, warned: bool) -> None:
    from_arrays(TEXT, np.array(x), [0, 1, 1], lengths=None if lengths is None else np.array(lengths), origin="ids.npz")
    err = capsys.readouterr().err
    assert err == (
        'warning: ids.npz: every padded sequence starts with id 0, the padding id of mask_zero: padded at the start? rnnc pads '
        'at the end (pad_sequences(..., padding="post")); leading zeros count as steps\n' if warned else ""
    )


def test_the_padding_warning_comes_once_per_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("train.npz", "val.npz"):
        np.savez(tmp_path / name, x=np.array(PRE_PADDED * 4), y=np.zeros(12))
    spec = replace(TEXT, data=ir.Data(train=str(tmp_path / "train.npz"), validation=str(tmp_path / "val.npz")))
    load_training_data(spec)
    warnings = capsys.readouterr().err.splitlines()
    assert [line.split(": ")[1] for line in warnings] == [str(tmp_path / "train.npz"), str(tmp_path / "val.npz")]


def test_csv_windows_and_horizon(tmp_path: Path) -> None:
    path = tmp_path / "series.csv"
    path.write_text(SERIES)
    data = load_file(FORECAST, path)
    # 10 rows, window 3, horizon 2: 10 - 3 - 2 + 1 = 6 samples; sample i predicts row i + 4.
    assert data.x.shape == (6, 3, 1) and data.y.shape == (6, 1)
    np.testing.assert_allclose(data.x[1, :, 0], [0.1, 0.2, 0.3], rtol=1e-6)
    np.testing.assert_allclose(data.y[:, 0], [0.4, 0.5, 0.6, 0.7, 0.8, 0.9], rtol=1e-6)


def test_a_byte_order_mark_before_a_series_is_not_in_its_first_column(tmp_path: Path) -> None:
    """Excel's "CSV UTF-8" starts with a BOM: the `value` column, first here, must still be `value`."""
    series = "value,step\n" + "".join(f"{i / 10},{i}\n" for i in range(10))
    plain, marked = tmp_path / "plain.csv", tmp_path / "marked.csv"
    plain.write_text(series)
    marked.write_bytes(b"\xef\xbb\xbf" + series.encode())
    one, other = load_file(FORECAST, plain), load_file(FORECAST, marked)
    np.testing.assert_array_equal(one.x, other.x)
    np.testing.assert_array_equal(one.y, other.y)


def test_validation_split_holds_out_the_last_fraction(tmp_path: Path) -> None:
    path = tmp_path / "train.npz"
    np.savez(path, x=np.arange(10, dtype=np.float32).reshape(10, 1, 1) * np.ones((1, 10, 1)), y=np.zeros(10))
    spec = model(RNN_BINARY, training={"validation_split": 0.3}, data={"train": str(path)})
    data = load_training_data(spec)
    assert data.validation is not None
    assert data.train.x[:, 0, 0].tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert data.validation.x[:, 0, 0].tolist() == [7, 8, 9]


def test_validation_split_that_leaves_nothing() -> None:
    data = Dataset(X[:1], Y[:1, None], None, "one.npz")
    with pytest.raises(DataError, match="leaves no training samples"):
        data.split(0.5)
