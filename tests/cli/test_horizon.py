"""A direct multi-step forecaster (`data.csv.all_steps`) deployed: `rnnc predict` names
its columns `<target>+<step>`, `rnnc evaluate` measures every step of the horizon."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rnnc.cli import main
from rnnc.initial import initial_weights
from rnnc.runtime import Predictor
from rnnc.spec import model_from_mapping

rnnc_onnx = pytest.importorskip("rnnc_onnx")

HORIZON = 3
SPEC: dict[str, Any] = {
    "rnnc": 1, "name": "direct", "input": {"shape": [4, 2]},
    "layers": [{"type": "gru", "units": 5}, {"type": "dense", "units": 2 * HORIZON}], "loss": "mse", "optimizer": "adam",
    "metrics": ["mae", "rmse"],
}
DATA = {"train": "gone.csv", "csv": {"features": ["a", "b"], "targets": ["a", "b"], "window": 4, "horizon": HORIZON, "all_steps": True}}
ROWS = 12


@pytest.fixture
def run(tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    folder.mkdir()
    model = model_from_mapping(SPEC)
    rnnc_onnx.export(model, initial_weights(model), folder / "model.onnx")
    (folder / "spec.yaml").write_text(json.dumps({**SPEC, "data": DATA}))
    return folder


def values() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(ROWS, 2)).round(3)


def write(path: Path, series: np.ndarray) -> None:
    path.write_text("date,a,b\n" + "".join(f"w{r},{a},{b}\n" for r, (a, b) in enumerate(series)))


def test_predict_names_each_target_at_each_step(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    series = values()
    write(tmp_path / "s.csv", series)
    assert main(["predict", str(run), str(tmp_path / "s.csv")]) == 0
    header, *rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert header == ["date", "a+1", "b+1", "a+2", "b+2", "a+3", "b+3"]
    assert len(rows) == ROWS - 4 + 1 and rows[-1][0] == f"w{ROWS - 1}"  # every full window, the last forecasting past the file
    want = Predictor(run / "model.onnx").run(np.stack([series[i : i + 4] for i in range(ROWS - 3)]).astype(np.float32))
    np.testing.assert_array_equal(np.array([[float(v) for v in r[1:]] for r in rows], np.float32), want)


def test_evaluate_reports_every_step_of_the_horizon(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    series = values()
    write(tmp_path / "s.csv", series)
    assert main(["evaluate", str(run), str(tmp_path / "s.csv"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    count = ROWS - 4 - HORIZON + 1
    assert result["samples"] == count
    x = np.stack([series[i : i + 4] for i in range(count)]).astype(np.float32)
    y = Predictor(run / "model.onnx").run(x).astype(np.float64)
    truth = np.stack([series[i + 4 : i + 4 + HORIZON] for i in range(count)]).astype(np.float32).astype(np.float64)  # [N, step, target]
    error = y.reshape(count, HORIZON, 2) - truth
    np.testing.assert_allclose(result["per_step"]["mae"], np.abs(error).mean(axis=(0, 2)), rtol=1e-6)
    np.testing.assert_allclose(result["per_step"]["rmse"], np.sqrt((error**2).mean(axis=(0, 2))), rtol=1e-6)
    assert result["mae"] == pytest.approx(np.abs(error).mean(), rel=1e-5)
    assert main(["evaluate", str(run), str(tmp_path / "s.csv")]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = lines.index("per step of the horizon (data.csv.all_steps)")
    assert lines[at + 1].split() == ["step", "mae", "rmse"]
    assert [line.split()[0] for line in lines[at + 2 :]] == ["+1", "+2", "+3"]


def test_a_one_step_forecaster_has_no_per_step_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    spec = {**SPEC, "layers": [SPEC["layers"][0], {"type": "dense", "units": 2}]}
    model = model_from_mapping(spec)
    rnnc_onnx.export(model, initial_weights(model), folder / "model.onnx")
    (folder / "spec.yaml").write_text(json.dumps({**spec, "data": {**DATA, "csv": {**DATA["csv"], "all_steps": False}}}))
    write(tmp_path / "s.csv", values())
    assert main(["evaluate", str(folder), str(tmp_path / "s.csv"), "--json"]) == 0
    assert "per_step" not in json.loads(capsys.readouterr().out)
