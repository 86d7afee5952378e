"""The spec-v2 examples: their data is what their prepare.py says, and their command runs.

The data tests check each shipped `.npz` against its source: co2_static's windows
against the v1 co2_forecast spec's own windowing of the same csv, lang_attention's ids
against lang_id's words, seq2seq_addition's answers against the sums of its questions.
The quick runs train each example for an epoch or two (on a strided subset where the
full data would be slow) and check the lines its README quotes are printed. The full
runs, which reach the results each README states, are marked slow:

    python -m pytest -m slow tests/examples/test_graph_examples.py    # about 10 minutes on two cores
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnc.data import load_file
from rnnc.spec import load_model

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
NAMES = ("co2_static", "lang_attention", "seq2seq_addition")
SPLITS = ("train", "val", "test")


def run_example(name: str, run_dir: Path, *extra: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name / "run.py"), "--run-dir", str(run_dir), *extra],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def subset(source: Path, target: Path, step: int) -> Path:
    """Every `step`-th row of each array (the shipped rows are sorted: a stride keeps
    every language, every length of question)."""
    with np.load(source) as data:
        np.savez(target, **{k: v if k.endswith("_classes") else v[::step] for k, v in data.items()})
    return target


@pytest.mark.parametrize("name", NAMES)
def test_each_graph_example_has_its_command_script_spec_readme_and_data(name: str) -> None:
    folder = EXAMPLES / name
    for part in ("run.py", "prepare.py", "spec.yaml", "README.md", *(f"data/{s}.npz" for s in SPLITS)):
        assert (folder / part).is_file(), part
    model = load_model(folder / "spec.yaml")  # passes rnnc check, data files included
    assert model.graph is not None and model.data.test is not None
    assert f"python examples/{name}/run.py" in (folder / "README.md").read_text()


@pytest.mark.parametrize("split", SPLITS)
def test_co2_static_windows_are_the_v1_specs_windows(split: str) -> None:
    v1 = load_model(EXAMPLES / "co2_forecast" / "spec.yaml")
    chain = load_file(v1, EXAMPLES / "co2_forecast" / "data" / f"{split}.csv")  # x: dco2, season_sin, season_cos
    with np.load(EXAMPLES / "co2_static" / "data" / f"{split}.npz") as graph:
        np.testing.assert_array_equal(graph["history"][:, :, 0], chain.x[:, :, 0])
        np.testing.assert_array_equal(graph["change"], chain.y)
        # the window's last week's season, as the v1 csv rounds it
        np.testing.assert_allclose(graph["calendar"][:, :2], chain.x[:, -1, 1:], atol=6e-5)
        with (EXAMPLES / "co2_forecast" / "data" / f"{split}.csv").open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        target = np.arange(len(chain.y)) + 52 - 1 + 13
        season = np.array([[float(rows[t]["season_sin"]), float(rows[t]["season_cos"])] for t in target])
        np.testing.assert_allclose(graph["calendar"][:, 2:4], season, atol=6e-5)  # the target week's


def test_lang_attention_ids_spell_lang_ids_words() -> None:
    chars = json.loads((EXAMPLES / "lang_attention" / "data" / "vocab.json").read_text(encoding="utf-8"))
    assert chars[:2] == ["<pad>", "<unk>"] and len(chars) == load_model(EXAMPLES / "lang_attention" / "spec.yaml").nodes[0].layer.vocab_size
    for split in SPLITS:
        with (EXAMPLES / "lang_id" / "data" / f"{split}.csv").open(encoding="utf-8", newline="") as handle:
            expected = sorted((r["word"], r["language"]) for r in csv.DictReader(handle))
        with np.load(EXAMPLES / "lang_attention" / "data" / f"{split}.npz") as data:
            classes = [str(c) for c in data["language_classes"]]
            got = sorted(("".join(chars[i] for i in row if i), classes[label]) for row, label in zip(data["word"], data["language"]))
            padded_at_the_end = all((row[(row != 0).sum():] == 0).all() for row in data["word"])
        assert got == expected, split
        assert padded_at_the_end


def test_seq2seq_answers_are_the_sums_and_no_question_is_in_two_splits() -> None:
    seen: dict[tuple[int, int], str] = {}
    for split in SPLITS:
        with np.load(EXAMPLES / "seq2seq_addition" / "data" / f"{split}.npz") as data:
            for question, answer in zip(data["question"], data["answer_in"]):
                text = "".join("+" if i == 11 else str(i - 1) for i in question if i)
                a, b = (int(x) for x in text.split("+"))
                assert 1 <= len(str(a)) <= 3 and 1 <= len(str(b)) <= 3, text
                real = answer[answer != 0]
                assert real[0] == 12 and real[-1] == 13 and (answer[len(real):] == 0).all(), answer
                assert "".join(str(i - 1) for i in real[1:-1]) == str(a + b), text
                key = (min(a, b), max(a, b))
                assert key not in seen, f"{text} in {split} and in {seen.get(key)}"
                seen[key] = split


def test_co2_static_runs_with_its_baselines(tmp_path: Path) -> None:
    out = run_example("co2_static", tmp_path / "run", "--set", "training.epochs=2",
                      "--v1-run-dir", str(tmp_path / "v1"), "--v1-set", "training.epochs=1")
    assert "test: 313 measured weeks from 1996-01-06 to 2001-12-29, forecast 13 weeks ahead" in out
    for name in ("LSTM \\+ calendar features", "LSTM with the season at every step", "seasonal naive", "persistence"):
        assert re.search(rf"  MAE \d+\.\d{{3}} ppm  {name}", out), name
    assert "MAE 1.672 ppm  seasonal naive" in out  # needs no model: the README's figure exactly
    assert re.search(r"graph MAE [\d.]+ ppm vs v1 chain [\d.]+ ppm vs seasonal naive 1\.672 ppm", out)


def test_lang_attention_runs_and_draws_its_weights(tmp_path: Path) -> None:
    data = EXAMPLES / "lang_attention" / "data"
    train, val = subset(data / "train.npz", tmp_path / "train.npz", 40), subset(data / "val.npz", tmp_path / "val.npz", 25)
    for split, keep in (("train", 600), ("val", 120)):
        lines = (EXAMPLES / "lang_id" / "data" / f"{split}.csv").read_text(encoding="utf-8").splitlines()[: keep + 1]
        (tmp_path / f"{split}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = run_example("lang_attention", tmp_path / "run", "--set", "training.epochs=2",
                      "--set", f"data.train={train}", "--set", f"data.validation={val}",
                      "--v1-run-dir", str(tmp_path / "v1"), "--v1-set", "training.epochs=1",
                      "--v1-set", f"data.train={tmp_path / 'train.csv'}", "--v1-set", f"data.validation={tmp_path / 'val.csv'}")
    assert re.search(r"attention \(this graph, model.onnx on onnxruntime\): test accuracy 0\.\d{4} \(\d+/3000\)", out)
    assert re.search(r"GRU final states \(v1 lang_id, model.onnx on onnxruntime\): test accuracy 0\.\d{4} \(\d+/3000\)", out)
    assert "majority baseline (always dutch): test accuracy 0.1667" in out  # balanced: 500 of 3,000
    assert re.search(r"attention [\d.]+ vs v1 GRU [\d.]+ vs majority 0\.1667", out)
    assert re.search(r"probabilities within \d\.\de-\d+ of model.onnx's", out)
    assert re.search(r"  farfalla +\w+ \d\.\d\d", out) and (tmp_path / "run" / "attention.png").stat().st_size > 10_000


def test_seq2seq_addition_runs_scores_teacher_forced_and_decodes(tmp_path: Path) -> None:
    train = subset(EXAMPLES / "seq2seq_addition" / "data" / "train.npz", tmp_path / "train.npz", 14)
    out = run_example("seq2seq_addition", tmp_path / "run", "--set", "training.epochs=1", "--set", f"data.train={train}")
    assert "test: 2000 questions never seen in training, 8368 answer steps (digits and end), teacher-forced" in out
    steps, exact = (float(x) for x in re.search(r"  per-step accuracy ([\d.]+)  exact match ([\d.]+) \(\d+/2000\)  LSTM", out).groups())
    assert 0 <= exact <= steps <= 1
    assert re.search(r"per-step accuracy 0\.\d{4}  exact match 0\.\d{4}  the most common token at each step", out)
    greedy, beam = (int(re.search(rf"  exact match [\d.]+ \((\d+)/2000\)  {kind} ", out).group(1)) for kind in ("greedy", "beam 3"))
    agree = int(re.search(r"greedy decoding and teacher forcing agree on (\d+)/2000 questions", out).group(1))
    assert agree >= 1995 and abs(greedy - round(exact * 2000)) <= 2000 - agree  # right where every forced step is
    assert 0 <= beam <= 2000 and re.search(r"beam 3 writes \d+ answers otherwise than greedy: \d+ now right, \d+ now wrong", out)
    assert re.search(r"(?m)^ +\d+\+\d+ = \d+( +\d* +(right|WRONG)){3}$", out)
    # rnnc train's own test accuracy (torch) counts the steps run.py counts (onnxruntime)
    logged = float(re.search(r"(?m)^test  loss [\d.]+  accuracy ([\d.]+)$", out).group(1))
    assert abs(logged - steps) < 1e-3, (logged, steps)


# --- the full runs: what each README states ------------------------------------------


@pytest.mark.slow
def test_co2_static_is_level_with_the_v1_chain(tmp_path: Path) -> None:
    out = run_example("co2_static", tmp_path / "run", "--v1-run-dir", str(tmp_path / "v1"))
    graph, v1, naive = (float(x) for x in re.search(r"graph MAE ([\d.]+) ppm vs v1 chain ([\d.]+) ppm vs seasonal naive ([\d.]+)", out).groups())
    assert graph < 0.55 and graph < naive / 3 and graph < v1 + 0.08, out


@pytest.mark.slow
def test_lang_attention_is_level_with_lang_id(tmp_path: Path) -> None:
    out = run_example("lang_attention", tmp_path / "run", "--v1-run-dir", str(tmp_path / "v1"))
    ours, v1 = (float(x) for x in re.search(r"attention ([\d.]+) vs v1 GRU ([\d.]+)", out).groups())
    assert ours >= 0.85 and ours >= v1 - 0.02, out


@pytest.mark.slow
def test_seq2seq_addition_writes_most_sums_right(tmp_path: Path) -> None:
    out = run_example("seq2seq_addition", tmp_path / "run")
    found = re.search(r"per-step accuracy ([\d.]+), exact match ([\d.]+) \(teacher-forced\); decoded exact match "
                      r"([\d.]+) greedy, ([\d.]+) beam 3", out)
    steps, exact, greedy, beam = (float(x) for x in found.groups())
    assert steps >= 0.98 and exact >= 0.93 and greedy >= 0.93 and beam >= 0.93, out
