"""Bad data through `rnnc train`: one line naming the file, exit 2, and no run directory.

Each case writes a small spec and a broken data file, runs the real command line
(`rnnc.cli.main`, in-process for speed; one case also as a subprocess, to see the
console script's own stderr), and checks that the error is a single line that names
the broken file, that the status is 2, and that nothing was created: the data is
checked before any training step, so no run directory is left half-made.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
from test_resume import rnnc  # noqa: E402
from tiny_models import binary_data, write_spec  # noqa: E402

from rnnc.cli import main  # noqa: E402
from rnnc.errors import SpecError  # noqa: E402
from rnnc.spec import load_model  # noqa: E402

Writer = Callable[[Path], Path]  # writes the case's spec and data into a folder; returns the spec


def npz(bad_train: dict[str, Any] | bytes, **spec: Any) -> Writer:
    """The tiny binary spec, its train.npz replaced by these arrays (or raw bytes)."""

    def write(folder: Path) -> Path:
        path = write_spec(folder, **spec)
        if isinstance(bad_train, bytes):
            (folder / "train.npz").write_bytes(bad_train)
        else:
            np.savez(folder / "train.npz", **bad_train)
        return path

    return write


def good() -> dict[str, np.ndarray]:
    x, y = binary_data()
    return {"x": x, "y": y}


def changed(**arrays: Any) -> dict[str, Any]:
    return {**good(), **arrays}


def with_nan(name: str, value: float) -> dict[str, np.ndarray]:
    arrays = good()
    arrays[name] = arrays[name].copy()
    arrays[name].flat[7] = value
    return arrays


def valid_npz_bytes() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **good())
    return buffer.getvalue()


def pickled_npz() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, x=np.array([{"a": 1}] * 96, dtype=object), y=good()["y"])
    return buffer.getvalue()


SPARSE = dict(
    layers=[{"type": "gru", "units": 4}, {"type": "dense", "units": 3, "activation": "softmax"}],
    loss="sparse_categorical_crossentropy",
)
VARIABLE = dict(input={"shape": [None, 2]})


def csv(text: str) -> Writer:
    def write(folder: Path) -> Path:
        (folder / "series.csv").write_text(text)
        return write_spec(folder, input={"shape": [4, 2]}, layers=[{"type": "gru", "units": 4}, {"type": "dense", "units": 1}],
                          loss="mse", metrics=["mae"], training={"epochs": 1, "validation_split": 0.2},
                          data={"train": "series.csv", "csv": {"targets": ["v"], "window": 4}})
    return write


SERIES = "t,v\n" + "".join(f"{i},{i * 0.1:.1f}\n" for i in range(30))


def validation_broken(folder: Path) -> Path:
    path = write_spec(folder)
    np.savez(folder / "val.npz", x=np.zeros((8, 6, 3), np.float32), y=np.zeros(8, np.float32))
    return path


def directory_for_data(folder: Path) -> Path:
    path = write_spec(folder)
    (folder / "train.npz").unlink()
    (folder / "train.npz").mkdir()
    return path


# (id, case writer, the broken file's name, expected fragment of the one line)
CASES: list[tuple[str, Writer, str, str]] = [
    ("x_features", npz(changed(x=np.zeros((96, 6, 3), np.float32))), "train.npz", "x has 3 features per step, the spec's input needs 2"),
    ("x_timesteps", npz(changed(x=np.zeros((96, 9, 2), np.float32))), "train.npz", "x has 9 timesteps, the spec's input needs 6"),
    ("x_rank", npz(changed(x=np.zeros((96, 12), np.float32))), "train.npz", "x has shape [96, 12], the spec's input needs [N, 6, 2]"),
    ("x_dtype_text", npz(changed(x=np.full((96, 6, 2), "a"))), "train.npz", "x has dtype <U1, the spec's input needs numbers"),
    ("y_count", npz(changed(y=np.zeros(90, np.float32))), "train.npz", "x has 96 samples but y has 90 samples"),
    ("y_shape", npz(changed(y=np.zeros((96, 4), np.float32))), "train.npz", "y has shape [96, 4]"),
    ("binary_label_outside", npz(changed(y=np.full(96, 2.0, np.float32))), "train.npz", "y holds values from 2 to 2; binary_crossentropy needs labels in [0, 1]"),
    ("class_outside", npz(changed(y=np.arange(96) % 5), **SPARSE), "train.npz", "y holds class ids from 0 to 4, the model has 3 classes [0, 2]"),
    ("class_fraction", npz(changed(y=np.full(96, 0.5)), **SPARSE), "train.npz", "y must hold integer class ids"),
    ("x_nan", npz(with_nan("x", np.nan)), "train.npz", "x holds 1 NaN or inf values (first: NaN at x[0, 3, 1])"),
    ("x_inf", npz(with_nan("x", np.inf)), "train.npz", "x holds 1 NaN or inf values (first: inf at x[0, 3, 1])"),
    ("y_nan", npz(with_nan("y", np.nan)), "train.npz", "NaN"),
    ("no_samples", npz({"x": np.zeros((0, 6, 2), np.float32), "y": np.zeros(0, np.float32)}), "train.npz", "holds no samples"),
    ("missing_y", npz({"x": good()["x"]}), "train.npz", "no array 'y' (arrays: x)"),
    ("lengths_beyond_time_axis", npz(changed(lengths=np.full(96, 9)), **VARIABLE), "train.npz", "lengths must lie in [1, 6] (the padded time axis of x), sample 0 has length 9"),
    ("lengths_zero", npz(changed(lengths=np.zeros(96, np.int64)), **VARIABLE), "train.npz", "lengths must lie in [1, 6]"),
    ("lengths_fractions", npz(changed(lengths=np.full(96, 2.5)), **VARIABLE), "train.npz", "lengths has dtype float64, expected integers"),
    ("empty_file", npz(b""), "train.npz", "not a valid .npz archive"),
    ("truncated_npz", npz(valid_npz_bytes()[: len(valid_npz_bytes()) // 2]), "train.npz", "not a valid .npz archive"),
    ("truncated_npz_tail", npz(valid_npz_bytes()[:-30]), "train.npz", "not a valid .npz archive"),
    ("garbage", npz(os.urandom(4096)), "train.npz", "not a valid .npz archive"),
    ("zip_not_npz", npz(b""), "train.npz", "'x' is not a numpy array"),  # replaced below by a real zip of text
    ("pickled_objects", npz(pickled_npz()), "train.npz", "holds pickled or object arrays, which rnnc never loads"),
    ("validation_file", validation_broken, "val.npz", "x has 3 features per step"),
    ("csv_missing_cell", csv(SERIES.replace("5,0.5\n", "5,\n")), "series.csv", "series.csv:7: column 'v': '' is not a number"),
    ("csv_missing_column", csv(SERIES.replace("5,0.5\n", "5\n")), "series.csv", "series.csv:7: 1 columns, the header has 2"),
    ("csv_not_a_number", csv(SERIES.replace("5,0.5\n", "5,five\n")), "series.csv", "series.csv:7: column 'v': 'five' is not a number"),
    ("csv_nan", csv(SERIES.replace("5,0.5\n", "5,nan\n")), "series.csv", "series.csv:7: column 'v' is nan (NaN and inf are not data)"),
    ("csv_empty", csv(""), "series.csv", "is empty"),
    ("csv_binary", csv(""), "series.csv", "not a text csv file (cannot decode it as UTF-8)"),  # replaced below
    ("csv_too_short_for_a_window", csv("t,v\n1,1\n2,2\n"), "series.csv", "2 rows are too few for window 4 + horizon 1"),
    ("directory_for_a_file", directory_for_data, "train.npz", "is a directory, not a data file"),
]


def _zip_of_text(folder: Path) -> Path:
    path = write_spec(folder)
    with zipfile.ZipFile(folder / "train.npz", "w") as archive:
        archive.writestr("x.npy", "not an array")
        archive.writestr("y.npy", "nor this")
    return path


def _csv_not_utf8(folder: Path) -> Path:
    path = csv("t,v\n1,1\n")(folder)
    (folder / "series.csv").write_bytes(b"t,v\n\xff\xfe\x00\x01\n" * 20)
    return path


CASES = [(name, {"zip_not_npz": _zip_of_text, "csv_binary": _csv_not_utf8}.get(name, write), file, fragment)
         for name, write, file, fragment in CASES]


def train(spec: Path, run: Path) -> int:
    return main(["train", str(spec), "-o", str(run), "--device", "cpu", "--no-progress"])


@pytest.mark.parametrize(("write", "broken", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_data_is_one_line_exit_2_and_no_run_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], write: Writer, broken: str, fragment: str
) -> None:
    spec = write(tmp_path)
    run = tmp_path / "run"
    status = train(spec, run)
    out, err = capsys.readouterr()
    assert status == 2, err
    assert len(err.splitlines()) == 1, err
    assert str(tmp_path / broken) in err, err
    assert fragment in err, err
    assert "Traceback" not in out + err and "epoch" not in out
    assert not run.exists()


def test_a_file_without_read_permission(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """chmod 000 stops anyone but root; as root (CI runs as root) the refusal the kernel
    would give is simulated by making the data file's open raise EACCES."""
    spec = write_spec(tmp_path)
    data = tmp_path / "train.npz"
    data.chmod(0)
    if os.geteuid() == 0:
        real_open = Path.open

        def refuse(self: Path, *args: Any, **kwargs: Any) -> Any:
            if self == data:
                raise PermissionError(13, "Permission denied", str(self))
            return real_open(self, *args, **kwargs)

        monkeypatch.setattr(Path, "open", refuse)
    run = tmp_path / "run"
    assert train(spec, run) == 2
    err = capsys.readouterr().err
    assert err == f"{data}: cannot read (Permission denied)\n"
    assert not run.exists()


def test_the_console_command_prints_one_line_and_no_traceback(tmp_path: Path) -> None:
    spec = npz(with_nan("x", np.inf))(tmp_path)
    run = tmp_path / "run"
    process = rnnc(spec, "-o", run)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 2, err.decode()
    assert err.decode().splitlines() == [f"{tmp_path / 'train.npz'}: x holds 1 NaN or inf values (first: inf at x[0, 3, 1])"]
    assert not run.exists()


def test_each_case_fails_on_its_data_alone(tmp_path: Path) -> None:
    """The spec of every case is valid, so the refusal above comes from the data check
    (a directory in place of a data file is caught earlier, by the spec's own rules)."""
    for name, write, _, _ in CASES:
        folder = tmp_path / name
        folder.mkdir()
        spec = write(folder)
        if name == "directory_for_a_file":
            with pytest.raises(SpecError, match="is a directory, not a data file"):
                load_model(spec)
        else:
            assert load_model(spec).name == "tiny"
