"""The character-level generator example: its data is the package's text, its n-gram
baseline is a distribution, and its command trains, scores and samples.

The quick run trains a small GRU for one epoch on the first 20 KB of the training text;
the full run, which reaches the README's figures, is marked slow:

    python -m pytest -m slow tests/examples/test_char_generator.py    # about 4 minutes on two cores
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rnnc.data import load_training_data
from rnnc.spec import load_model

FOLDER = Path(__file__).resolve().parents[2] / "examples" / "char_generator"


def ngram_module():  # noqa: ANN201 - the example's module, loaded from its file
    spec = importlib.util.spec_from_file_location("char_generator_ngram", FOLDER / "ngram.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_example(run_dir: Path, *extra: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(FOLDER / "run.py"), "--run-dir", str(run_dir), *extra],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_example_has_its_command_script_spec_readme_and_data() -> None:
    for part in ("run.py", "prepare.py", "ngram.py", "spec.yaml", "README.md", "data/train.txt", "data/valid.txt", "data/test.txt"):
        assert (FOLDER / part).is_file(), part
    readme = (FOLDER / "README.md").read_text(encoding="utf-8")
    assert "python examples/char_generator/run.py" in readme and "bible-kjv-text" in readme
    data = load_training_data(load_model(FOLDER / "spec.yaml"))  # the spec reads its text as it is
    assert data.vocab is not None and data.vocab.size == 64 and data.vocab.tokenizer == "char"
    assert len(data.train) == math.ceil((len((FOLDER / "data" / "train.txt").read_text(encoding="utf-8").strip()) - 1) / data.vocab.max_length)


def test_the_shipped_text_is_verses_without_references() -> None:
    sizes = {}
    for name in ("train", "valid", "test"):
        text = (FOLDER / "data" / f"{name}.txt").read_text(encoding="utf-8")
        assert not re.search(r"(?m)^\S*\d+:\d+ ", text), name  # "Ge1:1 " stripped
        assert text.endswith(".\n") or text.endswith("?\n") or text.endswith("!\n"), name
        sizes[name] = len(text.encode())
    assert 500_000 < sizes["train"] < 650_000 and all(40_000 < sizes[n] < 80_000 for n in ("valid", "test")), sizes
    assert (FOLDER / "data" / "train.txt").read_text(encoding="utf-8").startswith("In the beginning God created the heaven and the earth.\n")
    assert (FOLDER / "data" / "test.txt").read_text(encoding="utf-8").startswith("In the beginning was the Word")


@pytest.mark.skipif(shutil.which("bible") is None, reason="the bible-kjv package is not installed")
def test_prepare_writes_the_shipped_files_from_the_package() -> None:
    done = subprocess.run([sys.executable, str(FOLDER / "prepare.py"), "--check"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "up to date" in done.stdout, done.stdout + done.stderr


def test_the_kneser_ney_baseline_is_a_distribution_over_the_vocabulary() -> None:
    ngram = ngram_module()
    text = "the cat sat on the mat. the cat ate."
    vocab = sorted(set(text))
    model = ngram.KneserNey(3).fit(text)
    for history in ("", "t", "th", "ca", "zq", " m", "e."):
        total = sum(model.prob(history, c, len(vocab) + 1) for c in [*vocab, "\0"])
        assert total == pytest.approx(1.0, abs=1e-12), history
    # seen continuations beat unseen ones; an unknown character still has a probability
    assert model.prob("th", "e", len(vocab) + 1) > 0.5 > model.prob("th", "a", len(vocab) + 1) > 0
    assert 0 < model.prob("ca", "\0", len(vocab) + 1) < 0.01
    logp = model.log_probs("the cog", vocab)
    assert logp.shape == (6,) and (logp < 0).all()


def test_order_one_is_absolute_discounting_of_the_counts_over_a_uniform_floor() -> None:
    model = ngram_module().KneserNey(1).fit("aab")  # counts a: 2, b: 1; n1 = 1, n2 = 1: D = 1/3
    d = 1 / 3
    assert model.prob("", "a", 3) == pytest.approx((2 - d) / 3 + d * 2 / 3 / 3)
    assert model.prob("", "b", 3) == pytest.approx((1 - d) / 3 + d * 2 / 3 / 3)
    assert model.prob("", "\0", 3) == pytest.approx(d * 2 / 3 / 3)


def test_the_example_trains_scores_with_onnx_and_its_baseline_and_samples(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    head = (FOLDER / "data" / "train.txt").read_text(encoding="utf-8")[:20_000]
    (tmp_path / "train.txt").write_text(head, encoding="utf-8")
    out = run_example(tmp_path / "run", "--set", "training.epochs=1", "--set", "layers.1.units=32",
                      "--set", f"data.train={tmp_path / 'train.txt'}", "--set", "layers.0.vocab_size=70",
                      "--set", "layers.2.units=70", "--max-order", "5")
    assert "test: data/test.txt, 56,625 characters, 56,624 predicted" in out
    chunked = float(re.search(r"  +([\d.]+)  [\d.]+ bits  GRU \(model.onnx\), \d+-character samples", out).group(1))
    assert re.search(r"  +[\d.]+  [\d.]+ bits  GRU \(model.onnx\), the whole text in one pass", out)
    assert re.search(r"  +[\d.]+  [\d.]+ bits  order-5 Kneser-Ney character n-gram, same training text", out)
    assert re.search(r"  +[\d.]+  [\d.]+ bits  order-[345] Kneser-Ney character n-gram, the order of 3-5 best on validation", out)
    # the perplexity run.py computes through onnxruntime is exp of rnnc train's test loss (torch)
    logged = float(re.search(r"(?m)^test  loss ([\d.]+)", out).group(1))
    assert chunked == pytest.approx(math.exp(logged), rel=2e-4)
    sample = out.split("--seed 0:\n", 1)[1].split("\n\nperplexity", 1)[0]
    assert sample.startswith("And God said") and len(sample) > 100, sample


@pytest.mark.slow
def test_the_full_run_beats_the_order_5_ngram(tmp_path: Path) -> None:
    out = run_example(tmp_path / "run")
    found = re.search(r"perplexity ([\d.]+) per character, ([\d.]+) in one pass \(order-5 n-gram ([\d.]+), order-\d+ ([\d.]+)\)", out)
    chunked, whole, five, best = (float(x) for x in found.groups())
    assert whole < chunked < five and whole < best + 0.1, out
