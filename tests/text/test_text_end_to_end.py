"""Raw text end to end: rnnc train on a .jsonl, then rnnc predict on raw lines and
rnnc evaluate on labelled text, through model.onnx alone."""

from __future__ import annotations

import contextlib
import io
import json
import random
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import onnx
import pytest

from rnnc.cli import main
from rnnc.text import Vocab

torch = pytest.importorskip("torch")
from rnnc_torch.cpu.threads import set_to  # noqa: E402  (after the skip when torch is missing)

SPEC = """\
rnnc: 1
name: tiny-text
input: {shape: [null], dtype: int64}
layers:
  - {type: embedding, vocab_size: 52, dim: 16, mask_zero: true}
  - {type: gru, units: 16}
  - {type: dense, units: 1, activation: sigmoid}
loss: binary_crossentropy
optimizer: {type: adam, lr: 0.01}
metrics: [accuracy, auc]
training: {epochs: 6, batch_size: 32, validation_split: 0.2}
data:
  train: train.jsonl
  test: test.jsonl
  text: {tokenizer: word, max_vocab: 50, max_length: 20}
"""


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models on a busy two-core machine: one torch thread (as tests/train does)."""
    with set_to(1):
        yield


def write_reviews(folder: Path) -> None:
    """Reviews whose label is the kind of their two opinion words, and the spec."""
    rng = random.Random(0)
    opinions = {"pos": "good great fine nice lovely superb".split(), "neg": "bad awful poor sad ugly terrible".split()}
    filler = "the a movie was film plot acting it really very".split()
    rows = []
    for _ in range(400):
        label = rng.choice(["neg", "pos"])
        words = rng.choices(filler, k=5) + rng.choices(opinions[label], k=2)
        rng.shuffle(words)
        rows.append({"text": " ".join(words).capitalize(), "label": label})
    for name, part in (("train.jsonl", rows[:320]), ("test.jsonl", rows[320:])):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in part))
    (folder / "spec.yaml").write_text(SPEC)


def train(folder: Path, *extra: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["train", str(folder / "spec.yaml"), "-o", str(folder / "run"), "--no-progress", *extra])
    return status, out.getvalue()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A trained run on the reviews."""
    folder = tmp_path_factory.mktemp("text")
    write_reviews(folder)
    status, printed = train(folder)
    assert status == 0
    return folder, printed


def test_the_run_keeps_the_vocabulary_beside_the_model_and_inside_it(run: tuple[Path, str]) -> None:
    folder, _ = run
    vocab = Vocab.from_json((folder / "run" / "vocab.json").read_text(), "vocab.json")
    assert vocab.tokenizer == "word" and vocab.max_length == 20 and "movie" in vocab.tokens
    props = {p.key: p.value for p in onnx.load(folder / "run" / "model.onnx").metadata_props}
    assert Vocab.from_json(props["rnnc.vocab"], "model.onnx") == vocab
    assert json.loads(props["classes"]) == ["neg", "pos"]


def test_predict_reads_raw_lines_and_prints_labels_with_probabilities(run: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    folder, _ = run
    lines = folder / "lines.txt"
    lines.write_text("The movie was GREAT and lovely\nAwful, really terrible plot\nzzz qqq\n\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["predict", str(folder / "run" / "model.onnx"), str(lines)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "text,label,probability,p_pos"  # one sigmoid unit: the probability of class 1, pos
    assert len(out) == 4  # the blank line at the end holds no text
    first, second = out[1].rsplit(",", 3), out[2].rsplit(",", 3)
    assert first[:2] == ["The movie was GREAT and lovely", "pos"] and float(first[2]) > 0.8 and first[3] == first[2]
    assert second[:2] == ['"Awful, really terrible plot"', "neg"] and float(second[2]) > 0.8
    assert float(second[3]) == pytest.approx(1 - float(second[2]), abs=1e-5)
    assert out[3].startswith("zzz qqq,")  # unknown words only: still a prediction


def test_evaluate_gives_the_trainers_test_numbers(run: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    folder, printed = run
    logged = dict(re.findall(r"(\w+) ([\d.]+)", next(line for line in printed.splitlines() if line.startswith("test "))))
    capsys.readouterr()
    assert main(["evaluate", str(folder / "run"), str(folder / "test.jsonl"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["samples"] == 80
    for name in ("loss", "accuracy", "auc"):
        assert result[name] == pytest.approx(float(logged[name]), abs=1.5e-4), name


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: {**r, "label": {"neg": "bad", "pos": "good"}[r["label"]]}, "classes (bad, good) are not those the run"),
        (lambda r: {**r, "text": r["text"] + " extra words"}, "gives another vocabulary than"),
    ],
    ids=["classes", "vocabulary"],
)
def test_resume_refuses_data_that_changed_its_classes_or_vocabulary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change, message: str
) -> None:
    """The spec fingerprint cannot see the data files: the run's own classes and
    vocabulary are compared instead, before a single weight is reused."""
    write_reviews(tmp_path)
    assert train(tmp_path, "--set", "training.epochs=1")[0] == 0
    files = {name: (tmp_path / name).read_text() for name in ("train.jsonl", "test.jsonl")}
    for name, text in files.items():
        (tmp_path / name).write_text("".join(json.dumps(change(json.loads(line))) + "\n" for line in text.splitlines()))
    before = (tmp_path / "run" / "weights.safetensors").read_bytes()
    capsys.readouterr()
    assert train(tmp_path, "--resume")[0] == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("--resume: ") and message in err[0], err
    assert (tmp_path / "run" / "weights.safetensors").read_bytes() == before
    # the same data again: the run continues
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    status, printed = train(tmp_path, "--resume", "--set", "training.epochs=2")
    assert status == 0 and "epoch 2/2" in printed
