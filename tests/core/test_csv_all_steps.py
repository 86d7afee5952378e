"""`data.csv.all_steps`: every step 1..horizon is a target of each window (direct
multi-step forecasting), step-major, with the window count of `horizon` alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rnnc import ir
from rnnc.data_csv import read_windows, target_names
from rnnc.errors import DataError, SpecError
from rnnc.spec import load_model

# 12 rows: a = row, b = 10 * row, so every target value names its row
SERIES = "date,a,b\n" + "".join(f"d{r},{r},{10 * r}\n" for r in range(12))


def windows(**settings: object) -> ir.CsvWindows:
    return ir.CsvWindows(**{"features": ("a", "b"), "targets": ("a", "b"), "window": 3, "horizon": 4, **settings})  # type: ignore[arg-type]


def test_every_step_of_the_horizon_is_a_target_step_major(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text(SERIES)
    x, y = read_windows(path, windows(all_steps=True))
    # 12 rows, window 3, horizon 4: 12 - 3 - 4 + 1 = 6 windows, as without all_steps
    assert x.shape == (6, 3, 2) and y.shape == (6, 8)
    rows = np.arange(12)
    for i in range(6):  # an independent reference: window i ends at row i + 2
        want = [value for k in range(1, 5) for value in (rows[i + 2 + k], 10 * rows[i + 2 + k])]
        assert y[i].tolist() == want
        assert x[i, :, 0].tolist() == [i, i + 1, i + 2]


def test_the_last_step_alone_is_the_v1_horizon(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text(SERIES)
    _, every = read_windows(path, windows(all_steps=True))
    x, last = read_windows(path, windows())
    assert last.shape == (6, 2)
    np.testing.assert_array_equal(every[:, -2:], last)  # the horizon's last step is what v1's horizon predicts
    assert x[:, -1, 0].tolist() == [2, 3, 4, 5, 6, 7]


def test_one_target_one_step_is_the_plain_window(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text(SERIES)
    _, y = read_windows(path, windows(targets=("b",), horizon=1, all_steps=True))
    _, plain = read_windows(path, windows(targets=("b",), horizon=1))
    np.testing.assert_array_equal(y, plain)
    assert len(y) == 12 - 3 - 1 + 1


def test_too_few_rows_for_window_and_horizon(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("a,b\n" + "1,2\n" * 6)
    with pytest.raises(DataError, match="6 rows are too few for window 3 \\+ horizon 4 \\(at least 7 needed\\)"):
        read_windows(path, windows(all_steps=True))
    path.write_text("a,b\n" + "1,2\n" * 7)
    assert len(read_windows(path, windows(all_steps=True))[1]) == 1


def test_target_names_are_step_major() -> None:
    assert target_names(windows(horizon=2, all_steps=True)) == ("a+1", "b+1", "a+2", "b+2")
    assert target_names(windows(horizon=2)) == ("a", "b")


SPEC = """rnnc: 1
name: h
input: {{shape: [3, 2]}}
layers:
  - {{type: gru, units: 4}}
  - {{type: dense, units: {units}}}
loss: mse
optimizer: adam
data:
  train: s.csv
  csv:
    features: [a, b]
    targets: [a, b]
    window: 3
    horizon: 4
{extra}"""


@pytest.mark.parametrize(
    ("units", "extra", "message"),
    [
        (2, "    all_steps: true\n", "spec.yaml:16:16: data.csv.all_steps: predicts 2 columns at each of 4 steps "
                                    "(data.csv.horizon), so the last layer needs 8 units (4 x 2), it has 2"),
        (8, "", "spec.yaml:13:14: data.csv.targets: data.csv.targets names 2 columns, the last layer has 8 units"),
    ],
    ids=["all-steps", "v1-horizon"],
)
def test_the_last_layer_must_have_a_unit_per_target_and_step(tmp_path: Path, units: int, extra: str, message: str) -> None:
    (tmp_path / "s.csv").write_text(SERIES)
    (tmp_path / "spec.yaml").write_text(SPEC.format(units=units, extra=extra))
    with pytest.raises(SpecError) as err:
        load_model(tmp_path / "spec.yaml")
    assert [str(p).replace(str(tmp_path) + "/", "") for p in err.value.problems] == [message]


def test_a_last_layer_of_horizon_times_targets_units_compiles(tmp_path: Path) -> None:
    (tmp_path / "s.csv").write_text(SERIES)
    (tmp_path / "spec.yaml").write_text(SPEC.format(units=8, extra="    all_steps: true\n"))
    model = load_model(tmp_path / "spec.yaml")
    assert model.data.csv is not None and model.data.csv.all_steps
