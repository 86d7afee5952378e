"""`rnnc compile` and `rnnc predict`, run in-process through `rnnc.cli.main`, and once
as a whole process where importing torch or onnx fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

import rnnc_onnx
from rnnc.artifacts import save_weights
from rnnc.cli import main
from rnnc.initial import initial_weights
from rnnc.runtime import Predictor
from rnnc.spec import load_model

SPEC = """\
rnnc: 1
name: cli-demo
input:
  shape: [{steps}, 2]
layers:
  - type: gru
    units: 5
    return_sequences: true
  - type: lstm
    units: 4
  - type: dense
    units: 3
    activation: softmax
loss: categorical_crossentropy
optimizer: adam
training:
  seed: 3
"""


def write_spec(folder: Path, steps: str = "null") -> Path:
    path = folder / "spec.yaml"
    path.write_text(SPEC.format(steps=steps))
    return path


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    assert main(["compile", str(write_spec(tmp_path)), "-o", str(tmp_path / "model.onnx")]) == 0
    return tmp_path / "model.onnx"


def rng_x(n: int = 10, steps: int = 6) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, steps, 2)).astype(np.float32)


# --- compile ----------------------------------------------------------------------------


def test_compile_without_weights_warns_and_is_deterministic(tmp_path: Path, capsys) -> None:
    spec = write_spec(tmp_path)
    assert main(["compile", str(spec), "-o", str(tmp_path / "a.onnx")]) == 0
    assert "warning: no --weights given" in capsys.readouterr().err
    assert main(["compile", str(spec), "-o", str(tmp_path / "b.onnx")]) == 0
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
    onnx.checker.check_model(onnx.load(str(tmp_path / "a.onnx")), full_check=True)


def test_compile_with_weights_uses_them(tmp_path: Path, capsys) -> None:
    spec = write_spec(tmp_path)
    model = load_model(spec)
    weights = {k: v * 0.5 for k, v in initial_weights(model, seed=9).items()}
    save_weights(tmp_path / "weights.safetensors", weights)
    args = ["compile", str(spec), "--weights", str(tmp_path / "weights.safetensors"), "-o", str(tmp_path / "m.onnx")]
    assert main([*args, "--classes", "a,b,c"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert onnx.load(str(tmp_path / "m.onnx")) == rnnc_onnx.lower(model, weights, classes=["a", "b", "c"])


def test_compile_takes_overrides(tmp_path: Path) -> None:
    spec, out = write_spec(tmp_path), tmp_path / "s.onnx"
    assert main(["compile", str(spec), "--set", "export.streaming=true", "-o", str(out)]) == 0
    assert [i.name for i in onnx.load(str(out)).graph.input] == ["x", "lengths", "state.0.h", "state.1.h", "state.1.c"]


COMPILE_ERRORS = [
    ("torch backend, streaming", ["--backend", "torch", "--set", "export.streaming=true"], "export.streaming: true is for the ONNX graph"),
    ("unknown backend", ["--backend", "tflite"], "no backend named 'tflite'"),
    ("missing weights", ["--weights", "nope.safetensors"], "nope.safetensors: cannot read weights"),
    ("unstreamable", ["--set", "layers.0.bidirectional=true", "--set", "export.streaming=true"],
     "spec.yaml:6:5: layers[0] (gru): a bidirectional layer"),
]


@pytest.mark.parametrize(("what", "extra", "message"), COMPILE_ERRORS, ids=[c[0] for c in COMPILE_ERRORS])
def test_compile_errors_exit_2_with_one_line(tmp_path: Path, capsys, monkeypatch, what: str, extra: list[str], message: str) -> None:
    spec = write_spec(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["compile", str(spec), "-o", str(tmp_path / "m.onnx"), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "m.onnx").exists()


def test_what_a_backend_refuses_is_placed_at_the_override_that_set_it(tmp_path: Path, capsys, monkeypatch) -> None:
    """The backend's `check` names the setting; the CLI finds who wrote it: here `--set`."""
    spec = write_spec(tmp_path)
    monkeypatch.chdir(tmp_path)
    argv = ["compile", str(spec), "--backend", "torch", "--set", "export.streaming=true", "-o", str(tmp_path / "m.pt2")]
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("--set export.streaming=true: export.streaming: true is for the ONNX graph")
    assert not (tmp_path / "m.pt2").exists()


# --- predict ----------------------------------------------------------------------------


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed], ids=["stored", "compressed"])
def test_predict_npz_in_batches_to_npy_matches_the_runtime(tmp_path: Path, model_path: Path, capsys, monkeypatch, save) -> None:
    monkeypatch.setattr("rnnc.cli.progress.on_terminal", lambda: True)  # a bar is drawn on terminals only
    x, lengths = rng_x(), np.random.default_rng(1).integers(1, 7, 10)
    save(tmp_path / "in.npz", x=x, lengths=lengths)
    assert main(["predict", str(model_path), str(tmp_path / "in.npz"), "-o", str(tmp_path / "out.npy"), "--batch-size", "3"]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), Predictor(model_path).run(x, lengths), atol=1e-6)
    assert "10/10" in capsys.readouterr().err  # the progress bar, shown for more than one batch


def probabilities_in(table: str) -> np.ndarray:
    """The `p_<class>` columns of predict's CSV, for a model of classes 0, 1, 2 (no names)."""
    header, *rows = table.splitlines()
    assert header == "label,probability,p_0,p_1,p_2"
    return np.array([[float(v) for v in row.split(",")[2:]] for row in rows])


def test_predict_npy_to_stdout_csv(tmp_path: Path, model_path: Path, capsys) -> None:
    np.save(tmp_path / "in.npy", rng_x())
    assert main(["predict", str(model_path), str(tmp_path / "in.npy")]) == 0
    printed = probabilities_in(capsys.readouterr().out)
    np.testing.assert_allclose(printed, Predictor(model_path).run(rng_x()), atol=1e-6)  # six digits


def test_predict_csv_rows_of_different_lengths(tmp_path: Path, model_path: Path) -> None:
    x = rng_x(3)
    rows = ["f0,f1,f2", ",".join(map(str, x[0].ravel())), ",".join(map(str, x[1, :2].ravel())), ",".join(map(str, x[2, :5].ravel()))]
    (tmp_path / "in.csv").write_text("\n".join(rows) + "\n")
    assert main(["predict", str(model_path), str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.csv")]) == 0
    want = Predictor(model_path).run(x, np.array([6, 2, 5]))
    np.testing.assert_allclose(probabilities_in((tmp_path / "out.csv").read_text()), want, atol=1e-6)


def test_predict_of_a_fixed_length_model_from_flattened_csv(tmp_path: Path) -> None:
    assert main(["compile", str(write_spec(tmp_path, "4")), "-o", str(tmp_path / "m.onnx")]) == 0
    x = rng_x(5, 4)
    np.savetxt(tmp_path / "in.csv", x.reshape(5, -1), delimiter=",")
    assert main(["predict", str(tmp_path / "m.onnx"), str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), Predictor(tmp_path / "m.onnx").run(x), atol=1e-6)


PREDICT_ERRORS = [
    ("missing input", lambda d: "nope.npy", "nope.npy: cannot read: No such file or directory"),
    ("wrong features", lambda d: np.save(d / "x.npy", np.zeros((2, 6, 3), np.float32)), "x.npy: the model takes input [batch, time, 2], got shape [2, 6, 3]"),
    ("object array", lambda d: np.save(d / "x.npy", np.array([[1], "a"], dtype=object)), "x.npy: not a numeric .npy array"),
    ("npz without x", lambda d: np.savez(d / "x.npz", y=np.zeros(3)), "x.npz: no array 'x' (it has: y)"),
    ("not a zip", lambda d: (d / "x.npz").write_text("hello"), "x.npz: not an .npz archive"),
    ("bad csv number", lambda d: (d / "x.csv").write_text("1,2\n3,oops\n"), "x.csv:2: 'oops' is not a number"),
    ("odd csv row", lambda d: (d / "x.csv").write_text("1,2,3\n"), "x.csv:1: 3 values are not whole steps of 2 features"),
    ("unknown format", lambda d: (d / "x.tsv").write_text("1\t2\n"), "x.tsv: unknown input format '.tsv'"),
    ("text for a model of numbers", lambda d: (d / "x.txt").write_text("some words\n"), "x.txt: a .txt input holds raw text, but "),
]


@pytest.mark.parametrize(("what", "make", "message"), PREDICT_ERRORS, ids=[p[0] for p in PREDICT_ERRORS])
def test_predict_errors_exit_2_with_one_line(tmp_path: Path, model_path: Path, capsys, monkeypatch, what: str, make, message: str) -> None:
    made = make(tmp_path)
    name = made if isinstance(made, str) else next(p.name for p in tmp_path.iterdir() if p.name.startswith("x."))
    monkeypatch.chdir(tmp_path)
    assert main(["predict", str(model_path), name, "-o", "out.npy"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message), err
    assert not (tmp_path / "out.npy").exists()


def test_predict_refuses_an_unknown_output_format(tmp_path: Path, model_path: Path, capsys) -> None:
    np.save(tmp_path / "in.npy", rng_x())
    assert main(["predict", str(model_path), str(tmp_path / "in.npy"), "-o", str(tmp_path / "out.json")]) == 2
    assert "unknown output format" in capsys.readouterr().err


# --- deployment without torch -------------------------------------------------------------


def test_predict_runs_where_torch_and_onnx_cannot_be_imported(tmp_path: Path, model_path: Path) -> None:
    blocker = tmp_path / "blocked"
    for name in ("torch", "onnx"):
        (blocker / name).mkdir(parents=True)
        (blocker / name / "__init__.py").write_text(f"raise ImportError('{name} is blocked in this test')\n")
    np.save(tmp_path / "in.npy", rng_x())
    env = {**os.environ, "PYTHONPATH": str(blocker)}
    cmd = [sys.executable, "-m", "rnnc", "predict", str(model_path), str(tmp_path / "in.npy"), "-o", str(tmp_path / "out.npy")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), Predictor(model_path).run(rng_x()), atol=1e-6)
    check = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True, check=False)
    assert "blocked in this test" in check.stderr  # the blocker really blocks
