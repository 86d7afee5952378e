"""The examples on real data: their shipped data, their specs, and their one command.

The fast tests check the prepared files (small, balanced, split without overlap) and
run each example's command for one epoch (lang_id on a few hundred training words).
The full runs, which reach the results each README states, are marked slow:

    python -m pytest -m slow tests/examples      # about 4 minutes on two cores
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from rnnc.spec import load_model

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
NAMES = ("lang_id", "co2_forecast", "sunspots")


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def run_example(name: str, run_dir: Path, *extra: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name / "run.py"), "--run-dir", str(run_dir), *extra],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize("name", NAMES)
def test_each_example_has_its_command_script_spec_readme_and_data(name: str) -> None:
    folder = EXAMPLES / name
    for part in ("run.py", "prepare.py", "spec.yaml", "README.md", "data/train.csv", "data/val.csv", "data/test.csv"):
        assert (folder / part).is_file(), part
    model = load_model(folder / "spec.yaml")  # passes rnnc check, data files included
    assert model.data.test is not None
    assert f"python examples/{name}/run.py" in (folder / "README.md").read_text()


def test_shipped_data_stays_small() -> None:
    # 1 MB for the examples' own tables; the character-level generator's text (a
    # language model needs some hundreds of KB of it) has its own budget.
    sizes = {path: path.stat().st_size for path in EXAMPLES.glob("*/data/*")}
    text = {path: size for path, size in sizes.items() if path.parts[-3] == "char_generator"}
    assert sizes and sum(sizes.values()) - sum(text.values()) < 1_000_000, sizes
    assert sum(text.values()) < 800_000, text


def test_lang_id_splits_are_balanced_and_disjoint() -> None:
    splits = {split: rows(EXAMPLES / "lang_id" / "data" / f"{split}.csv") for split in ("train", "val", "test")}
    words = {}
    for split, data in splits.items():
        counts = Counter(row["language"] for row in data)
        assert sorted(counts) == ["dutch", "english", "french", "german", "italian", "spanish"]
        assert len(set(counts.values())) == 1, counts  # the same number per language
        words[split] = {row["word"] for row in data}
        assert len(words[split]) == len(data)  # no word twice
        assert all(row["word"].isalpha() and row["word"] == row["word"].lower() for row in data)
    assert not (words["train"] & words["val"]) and not (words["train"] & words["test"]) and not (words["val"] & words["test"])


def test_co2_test_period_and_filled_weeks() -> None:
    data = rows(EXAMPLES / "co2_forecast" / "data" / "test.csv")
    assert data[-1]["date"] == "2001-12-29"
    assert {row["measured"] for row in data} <= {"0", "1"}
    train = rows(EXAMPLES / "co2_forecast" / "data" / "train.csv")
    assert train[-1]["date"] < "1992-01-01"


def test_lang_id_runs_one_epoch_on_a_subset(tmp_path: Path) -> None:
    for split, keep in (("train", 600), ("val", 120)):
        lines = (EXAMPLES / "lang_id" / "data" / f"{split}.csv").read_text(encoding="utf-8").splitlines()[: keep + 1]
        (tmp_path / f"{split}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = run_example("lang_id", tmp_path / "run", "--set", "training.epochs=1",
                      "--set", f"data.train={tmp_path / 'train.csv'}", "--set", f"data.validation={tmp_path / 'val.csv'}")
    assert re.search(r"GRU \(rnnc, model.onnx on onnxruntime\): test accuracy 0\.\d{4} \(\d+/3000\)", out)
    assert re.search(r"character-bigram Naive Bayes: test accuracy 0\.\d{4}", out)
    assert "predicted:" in out and (tmp_path / "run" / "vocab.json").is_file()


@pytest.mark.parametrize(("name", "expected"), [
    ("co2_forecast", r"MAE \d\.\d{3} ppm  seasonal naive"),
    ("sunspots", r"accuracy 0\.\d{4} \(\d+/58\)  persistence"),
])
def test_series_examples_run_one_epoch(name: str, expected: str, tmp_path: Path) -> None:
    out = run_example(name, tmp_path / "run", "--set", "training.epochs=1")
    assert re.search(expected, out), out


# --- the full runs: what each README states ------------------------------------------


@pytest.mark.slow
def test_lang_id_beats_naive_bayes(tmp_path: Path) -> None:
    out = run_example("lang_id", tmp_path / "run")
    gru, bayes = (float(x) for x in re.search(r"GRU ([\d.]+) vs Naive Bayes ([\d.]+)", out).groups())
    assert gru >= 0.85 and gru >= bayes + 0.04, out


@pytest.mark.slow
def test_co2_beats_the_seasonal_naive_forecast(tmp_path: Path) -> None:
    out = run_example("co2_forecast", tmp_path / "run")
    lstm, naive = (float(x) for x in re.search(r"LSTM MAE ([\d.]+) ppm vs seasonal naive ([\d.]+) ppm", out).groups())
    assert lstm < 0.5 and lstm < naive / 2, out


@pytest.mark.slow
def test_sunspots_beats_persistence(tmp_path: Path) -> None:
    out = run_example("sunspots", tmp_path / "run")
    rnn, persistence = (float(x) for x in re.search(r"SimpleRNN ([\d.]+) vs persistence ([\d.]+)", out).groups())
    assert rnn >= 0.84 and rnn > persistence, out
