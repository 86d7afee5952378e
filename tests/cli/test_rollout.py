"""`rnnc predict MODEL SERIES.csv --steps N`: a one-step forecaster rolled forward over
its own forecasts equals a loop, written here, that runs the model window by window and
writes each forecast into the series; what cannot be rolled forward is refused."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rnnc.cli import main
from rnnc.cli.predict_rollout import roll_forward
from rnnc.initial import initial_weights
from rnnc.runtime import Predictor
from rnnc.spec import model_from_mapping

rnnc_onnx = pytest.importorskip("rnnc_onnx")

# two targets (b, d) among four features, in other places than first; a covariate c is read from the file
SPEC: dict[str, Any] = {
    "rnnc": 1, "name": "roll", "input": {"shape": [4, 4]},
    "layers": [{"type": "lstm", "units": 6}, {"type": "dense", "units": 2}], "loss": "mse", "optimizer": "adam",
    "training": {"seed": 3},
}
DATA: dict[str, Any] = {"train": "gone.csv", "csv": {"features": ["a", "b", "c", "d"], "targets": ["b", "d"], "window": 4}}
HISTORY, STEPS = 7, 5


def run_dir(folder: Path, spec: dict[str, Any] = SPEC, data: dict[str, Any] = DATA) -> Path:
    folder.mkdir()
    model = model_from_mapping(spec)
    rnnc_onnx.export(model, initial_weights(model), folder / "model.onnx")
    (folder / "spec.yaml").write_text(json.dumps({**spec, "data": data}))
    return folder


def series(rng: np.random.Generator) -> np.ndarray:
    """`[HISTORY + STEPS, 4]`: columns a, b, c, d."""
    return rng.normal(size=(HISTORY + STEPS, 4)).round(3)


def write_series(path: Path, values: np.ndarray, blank: int = STEPS) -> None:
    """With a date and a note column, and the last `blank` rows' targets (b, d) empty."""
    lines = ["date,a,b,note,c,d"]
    for r, (a, b, c, d) in enumerate(values):
        future = r >= len(values) - blank
        lines.append(f"day{r},{a},{'' if future else b},n{r},{c},{'' if future else d}")
    path.write_text("\n".join(lines) + "\n")


def reference(model: Path, values: np.ndarray) -> np.ndarray:
    """The model run on one window at a time, each forecast written into the series."""
    predictor = Predictor(model)
    filled = values.astype(np.float32).copy()
    out = []
    for t in range(HISTORY, HISTORY + STEPS):
        y = predictor.run(filled[None, t - 4 : t])[0]
        filled[t, [1, 3]] = y
        out.append(y)
    return np.array(out)


def test_the_rollout_equals_a_loop_over_windows(tmp_path: Path) -> None:
    run = run_dir(tmp_path / "run")
    values = series(np.random.default_rng(0))
    write_series(tmp_path / "in.csv", values)
    assert main(["predict", str(run), str(tmp_path / "in.csv"), "--steps", str(STEPS), "-o", str(tmp_path / "out.npy")]) == 0
    got = np.load(tmp_path / "out.npy")
    want = reference(run / "model.onnx", values)
    assert got.shape == (STEPS, 2)
    np.testing.assert_array_equal(got, want)
    # the forecasts change the later ones: feeding the truth back instead gives other numbers
    truth_fed = Predictor(run / "model.onnx").run(np.stack([values[t - 4 : t] for t in range(HISTORY, HISTORY + STEPS)]).astype(np.float32))
    assert not np.allclose(truth_fed[1:], want[1:], atol=1e-4)


def test_the_csv_names_each_future_row_and_the_targets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = run_dir(tmp_path / "run")
    values = series(np.random.default_rng(1))
    write_series(tmp_path / "in.csv", values)
    assert main(["predict", str(run), str(tmp_path / "in.csv"), "--steps", str(STEPS)]) == 0
    header, *rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert header == ["date", "note", "b", "d"]
    assert [r[:2] for r in rows] == [[f"day{t}", f"n{t}"] for t in range(HISTORY, HISTORY + STEPS)]
    want = reference(run / "model.onnx", values)
    np.testing.assert_array_equal(np.array([[float(v) for v in r[2:]] for r in rows], np.float32), want)  # 9 digits round-trip


def test_a_batch_of_series_rolls_as_each_alone(tmp_path: Path) -> None:
    run = run_dir(tmp_path / "run")
    predictor = Predictor(run / "model.onnx")
    rng = np.random.default_rng(2)
    history, ahead = rng.normal(size=(3, 4, 4)).astype(np.float32), rng.normal(size=(3, 6, 4)).astype(np.float32)
    given = ahead.copy()
    together = roll_forward(predictor, history, ahead, (1, 3))
    for i in range(3):
        np.testing.assert_allclose(together[i], roll_forward(predictor, history[i : i + 1], ahead[i : i + 1], (1, 3))[0], atol=1e-6)
    np.testing.assert_array_equal(ahead, given)  # the caller's array is left as it was


def one_step(**csv_settings: Any) -> dict[str, Any]:
    return {**DATA, "csv": {**DATA["csv"], **csv_settings}}


@pytest.mark.parametrize(
    ("data", "blank", "args", "message"),
    [
        (one_step(features=["a", "b", "c"], targets=["b", "d"]), STEPS, (),
         "{run}/spec.yaml: --steps feeds each forecast back as input, but target 'd' is not among data.csv.features (a, b, c)"),
        (one_step(horizon=2), STEPS, (),
         "{run}/spec.yaml: the model forecasts 2 steps ahead (data.csv.horizon); --steps rolls forward a one-step model (horizon 1)"),
        (one_step(horizon=2, all_steps=True), STEPS, (),
         "{run}/spec.yaml: the model forecasts every step 1..2 directly (data.csv.all_steps); run rnnc predict without --steps"),
        (DATA, 3, (), "{tmp}/in.csv: --steps 5 forecasts the file's last 5 rows, whose target cells (b, d) must be empty; the last 3 are"),
        (DATA, 6, (), "{tmp}/in.csv:8: column 'b' is empty; only the last 5 rows (the steps to forecast) may leave their targets empty"),
        (DATA, STEPS, ("--steps", "0"), "--steps must be at least 1, got 0"),
        (DATA, 9, ("--steps", "9"), "{tmp}/in.csv: 3 rows of history before the 9 to forecast, too few for one window of 4 (data.csv.window)"),
    ],
    ids=["target-not-a-feature", "horizon-2", "all-steps", "too-few-empty", "empty-in-history", "zero-steps", "short-history"],
)
def test_what_cannot_be_rolled_forward_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], data: dict[str, Any],
                                                  blank: int, args: tuple[str, ...], message: str) -> None:
    spec = {**SPEC, "input": {"shape": [4, len(data["csv"]["features"])]}}
    if data["csv"].get("all_steps"):
        spec["layers"] = [SPEC["layers"][0], {"type": "dense", "units": 4}]
    run = run_dir(tmp_path / "run", spec, data)
    values = series(np.random.default_rng(0))
    write_series(tmp_path / "in.csv", values, blank)
    out = tmp_path / "out.csv"
    assert main(["predict", str(run), str(tmp_path / "in.csv"), "--steps", str(STEPS), *args, "-o", str(out)]) == 2
    assert capsys.readouterr().err == message.format(run=run, tmp=tmp_path) + "\n"
    assert not out.exists()


def test_a_future_covariate_must_be_given(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = run_dir(tmp_path / "run")
    write_series(tmp_path / "in.csv", series(np.random.default_rng(0)))
    lines = (tmp_path / "in.csv").read_text().splitlines()
    lines[-1] = lines[-1].replace(",n11,", ",n11,,").rsplit(",", 2)[0] + ","  # row 11: c and d empty
    (tmp_path / "in.csv").write_text("\n".join(lines) + "\n")
    assert main(["predict", str(run), str(tmp_path / "in.csv"), "--steps", str(STEPS)]) == 2
    assert capsys.readouterr().err == f"{tmp_path / 'in.csv'}:13: column 'c': '' is not a number\n"


def test_steps_need_the_spec_and_a_series(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = run_dir(tmp_path / "run")
    np.save(tmp_path / "in.npy", np.zeros((1, 4, 4), np.float32))
    assert main(["predict", str(run), str(tmp_path / "in.npy"), "--steps", "2"]) == 2
    assert capsys.readouterr().err == f"--steps reads a series .csv (the history, then 2 rows with empty targets), got {tmp_path / 'in.npy'}\n"
    (run / "spec.yaml").unlink()
    write_series(tmp_path / "in.csv", series(np.random.default_rng(0)))
    assert main(["predict", str(run), str(tmp_path / "in.csv"), "--steps", str(STEPS)]) == 2
    assert capsys.readouterr().err == "--steps reads the series as the spec's data.csv says: pass the run directory or --spec\n"
