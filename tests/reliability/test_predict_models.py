"""Models whose metadata, interface or outputs do not fit, and bad `--threads`, to `rnnc predict`.

The metadata's sizes are allocated per batch (a raw-text batch is padded to
`timesteps`), so a 1e10 must stop at load; class names must be names, as many as the
output has units; a graph from another program (other inputs, 6 rows out for 3 in)
must not pass for an rnnc model. Each ends in one line naming the model, exit 2.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402
from predict_models import edited, export_all  # noqa: E402

from rnnc.cli import main  # noqa: E402
from rnnc.errors import DataError  # noqa: E402
from rnnc.runtime import Predictor, max_threads  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return export_all(tmp_path_factory.mktemp("models"))


def foreign(inputs: list[tuple[str, list]], nodes: list, y_shape: list) -> Callable[[Path], bytes]:
    """Another program's ONNX graph (float inputs, output y)."""
    graph = helper.make_graph(nodes, "foreign", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)])
    return lambda _: helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()


def metadata(kind: str, **entries: str) -> Callable[[dict[str, Path], Path], Path]:
    return lambda models, folder: edited(models[kind], folder / "m.onnx", **entries)


def graph(make: Callable[[Path], bytes]) -> Callable[[dict[str, Path], Path], Path]:
    def write(models: dict[str, Path], folder: Path) -> Path:
        (folder / "m.onnx").write_bytes(make(folder))
        return folder / "m.onnx"

    return write


DOUBLED = foreign([("x", ["N", "T", 2])], [helper.make_node("Concat", ["x", "x"], ["c"], axis=0),
                                           helper.make_node("Flatten", ["c"], ["y"], axis=1)], ["M", "K"])
TWO_INPUTS = foreign([("x", ["N", "T", 2]), ("z", ["N", "T", 2])], [helper.make_node("Add", ["x", "z"], ["y"])], ["N", "T", 2])
FLAT_X = foreign([("x", ["N"])], [helper.make_node("Identity", ["x"], ["y"])], ["N"])

# (id, the model, the input: .txt text or rows of 4 numbers, expected fragment of the one line)
BAD_MODELS: list[tuple[str, Callable[[dict[str, Path], Path], Path], str, str]] = [
    ("timesteps_1e10", metadata("text", timesteps="10000000000"), "words", "its metadata says timesteps '10000000000'; expected 'variable' or a whole number in [1, 1,048,576]"),
    ("timesteps_negative", metadata("text", timesteps="-5"), "words", "its metadata says timesteps '-5'"),
    ("timesteps_zero", metadata("fixed", timesteps="0"), "rows", "its metadata says timesteps '0'"),
    ("vocab_size_zero", metadata("text", vocab_size="0"), "words", "its metadata says vocab_size '0'"),
    ("classes_a_mapping", metadata("variable", classes='{"a": 1}'), "rows", "its metadata's classes is not a list of names"),
    ("classes_numbers", metadata("variable", classes="[1, 2]"), "rows", "its metadata's classes is not a list of names"),
    ("classes_too_few", metadata("text", classes='["a", "b"]'), "words", "its metadata names 2 classes, its output y has 3 units"),
    ("classes_not_json", metadata("variable", classes="[no"), "rows", "not a usable rnnc model: damaged interface or metadata"),
    ("six_rows_for_three", graph(DOUBLED), "rows", "for a batch of 3 sequences it gave y of shape [6, 12]"),
    ("inputs_x_and_z", graph(TWO_INPUTS), "rows", "it takes inputs rnnc does not feed (z)"),
    ("x_without_time", graph(FLAT_X), "rows", "its input x is tensor(float) ['N']"),
]


@pytest.mark.parametrize(("make", "data", "fragment"), [c[1:] for c in BAD_MODELS], ids=[c[0] for c in BAD_MODELS])
def test_a_model_that_does_not_fit_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      models: dict[str, Path], make, data: str, fragment: str) -> None:
    model = make(models, tmp_path)
    (tmp_path / "in").mkdir()
    data_file = tmp_path / "in" / ("x.txt" if data == "words" else "x.csv")
    data_file.write_text("some words\nmore\nand more\n" if data == "words" else "1,2,3,4,5,6,7,8,9,10,11,12\n" * 3)
    status = main(["predict", str(model), str(data_file), "-o", str(tmp_path / "in" / "out.npy")])
    err = capsys.readouterr().err.splitlines()
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith(f"{model}: not a usable rnnc model: ") and fragment in err[0], err
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == [data_file.name]


@pytest.mark.parametrize("threads", ["0", "-1", "100000"])
def test_threads_outside_a_sane_range(tmp_path: Path, capsys: pytest.CaptureFixture[str], models: dict[str, Path], threads: str) -> None:
    np.save(tmp_path / "x.npy", np.zeros((2, 6, 2), np.float32))
    assert main(["predict", str(models["fixed"]), str(tmp_path / "x.npy"), "--threads", threads]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"--threads must be between 1 and {max_threads()} (4 per core, at least 64), got {threads}"]


def test_the_api_refuses_nan_and_values_beyond_float32(models: dict[str, Path]) -> None:
    predictor = Predictor(models["fixed"])
    x = np.zeros((2, 6, 2))
    for bad in (np.nan, np.inf, 1e300):
        x[1, 4, 0] = bad
        with pytest.raises(DataError, match=r"x holds NaN, inf or values beyond float32's range \(first at x\[1, 4, 0\]\)"):
            predictor.run(x)


@pytest.mark.parametrize(("x", "status", "lines"), [(np.zeros((3, 6, 2)), 0, 0), (np.full((3, 6, 2), 1e300), 2, 1)],
                         ids=["good", "float64_overflow"])
def test_stderr_holds_rnnc_lines_only(tmp_path: Path, models: dict[str, Path], x: np.ndarray, status: int, lines: int) -> None:
    """In a real process: no numpy RuntimeWarning (a float64 past float32's range warned
    'overflow encountered in cast' and ran on inf), no onnxruntime log line."""
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out.npy"
    done = subprocess.run([sys.executable, "-m", "rnnc", "predict", str(models["fixed"]), str(tmp_path / "x.npy"), "-o", str(out),
                           "--threads", "1"], capture_output=True, text=True, timeout=120)
    assert done.returncode == status and len(done.stderr.splitlines()) == lines, done.stderr
    assert len(np.load(out)) == 3 if status == 0 else not out.exists()
