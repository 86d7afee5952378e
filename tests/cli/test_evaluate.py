"""`rnnc evaluate RUN_DIR|MODEL DATA`: the spec's loss and metrics from model.onnx and
numpy, equal to what the trainer logs for the same data."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from rnnc.cli import main

torch = pytest.importorskip("torch")
from rnnc_torch.threads import set_to  # noqa: E402  (after the skip when torch is missing)

SPECS = Path(__file__).resolve().parents[2] / "specs"


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    with set_to(1):
        yield


def train(spec: str, run: Path, *sets: str) -> dict[str, float]:
    """Train and return the numbers of the trainer's `test` line."""
    out = io.StringIO()
    overrides = [arg for s in ("training.epochs=2", *sets) for arg in ("--set", s)]
    with contextlib.redirect_stdout(out):
        assert main(["train", str(SPECS / spec), "-o", str(run), "--no-progress", *overrides]) == 0
    line = next((line for line in out.getvalue().splitlines() if line.startswith("test ")), "")
    return {k: float(v) for k, v in re.findall(r"(\w+) ([-\d.e]+)", line)}


@pytest.mark.parametrize(
    ("spec", "test_file", "names"),
    [
        ("seed_binary.yaml", "seed_binary_val.npz", ("loss", "accuracy", "auc")),
        ("gru_forecaster.yaml", "series_val.csv", ("loss", "mae", "rmse")),
        ("lstm_classifier.yaml", "lstm_classifier_val.npz", None),
    ],
)
def test_evaluate_matches_the_trainers_test_line(spec: str, test_file: str, names: tuple[str, ...] | None,
                                                 tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = SPECS / "data" / test_file
    logged = train(spec, tmp_path / "run", f"data.test={data}")
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "run"), str(data), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for name in names or logged:
        assert result[name] == pytest.approx(logged[name], abs=1.5e-4, rel=1e-3), name


def test_a_model_file_with_its_spec_elsewhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = SPECS / "data" / "seed_binary_val.npz"
    train("seed_binary.yaml", tmp_path / "run")
    shutil.copy(tmp_path / "run" / "model.onnx", tmp_path / "alone.onnx")
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "alone.onnx"), str(data)]) == 2
    assert capsys.readouterr().err == f"{tmp_path / 'spec.yaml'}: no such spec; pass the spec the model was trained from with --spec\n"
    assert main(["evaluate", str(tmp_path / "alone.onnx"), str(data), "--spec", str(tmp_path / "run" / "spec.yaml")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{data}: 500 samples"
    assert re.fullmatch(r"loss [\d.]+  accuracy [\d.]+  auc [\d.]+", out[1])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nowhere", "x.npz"], "nowhere: no such run directory or model file"),
        (["{tmp}", "x.npz"], "{tmp}: no model.onnx in this run directory"),
    ],
)
def test_bad_targets_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert main(["evaluate", *(a.replace("{tmp}", str(tmp_path)) for a in args)]) == 2
    err = capsys.readouterr().err
    assert message.replace("{tmp}", str(tmp_path)) in err and err.count("\n") == 1
