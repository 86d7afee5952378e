"""`rnnc evaluate` of per-step outputs: `exact_match` (every real step of a sequence
right) beside the per-step `accuracy`, and `perplexity` for an output with `feedback:`,
against numpy written here on tiny exported models with fresh weights (no torch).

The targets are the model's own predictions with chosen steps changed, so the exact
match is known before the model runs: a change on a real step breaks its sequence, a
change on a padded (or unscored) step does not."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from rnnc.cli import main
from rnnc.runtime import load

pytest.importorskip("rnnc_onnx")

TAGGER = """rnnc: 1
name: tagger
input: {shape: [null, 2]}
layers: [{type: gru, units: 6, return_sequences: true}, {type: dense, units: 3, activation: softmax}]
loss: sparse_categorical_crossentropy
optimizer: adam
metrics: [accuracy]
"""

CHARS = """rnnc: 2
name: chars
inputs:
  text: {shape: [null], dtype: int64}
layers:
  - {type: embedding, vocab_size: 9, dim: 4, mask_zero: true}
  - {type: gru, units: 6, return_sequences: true}
  - {name: next, type: dense, units: 9, activation: softmax}
outputs:
  next: {loss: sparse_categorical_crossentropy, metrics: [accuracy], feedback: text}
optimizer: adam
"""

TWO_HEADS = """rnnc: 2
name: heads
inputs:
  x: {shape: [null, 2]}
layers:
  - {name: enc, type: lstm, units: 5, return_sequences: true}
  - {name: tags, type: dense, units: 4, activation: softmax}
  - {name: level, type: dense, units: 1, input: enc}
outputs:
  tags: {loss: sparse_categorical_crossentropy, metrics: [accuracy]}
  level: {loss: mse}
optimizer: adam
"""


def compiled(folder: Path, spec: str) -> Path:
    """A run-like folder: spec.yaml and its model.onnx with fresh weights."""
    folder.mkdir()
    (folder / "spec.yaml").write_text(spec)
    with contextlib.redirect_stderr(io.StringIO()):  # the warning about fresh weights
        assert main(["compile", str(folder / "spec.yaml"), "--backend", "onnx", "-o", str(folder / "model.onnx")]) == 0
    return folder


def evaluate_json(capsys: pytest.CaptureFixture[str], run: Path, data: Path) -> dict:
    capsys.readouterr()
    assert main(["evaluate", str(run), str(data), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def real_steps(n: int, steps: int, seed: int, shortest: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(shortest, steps + 1, size=n)


def test_a_sequence_labeller_is_right_on_a_sequence_only_where_every_real_step_is(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = compiled(tmp_path / "run", TAGGER)
    n, steps = 20, 6
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, steps, 2)).astype(np.float32)
    lengths = real_steps(n, steps, seed=2, shortest=2)
    probs = load(run / "model.onnx").predict(x, lengths).astype(np.float64)
    y = probs.argmax(-1)
    broken = [0, 3, 4, 11]  # one real step changed: these sequences are wrong
    for i in broken:
        y[i, lengths[i] - 1] = (y[i, lengths[i] - 1] + 1) % 3
    short = [i for i in range(n) if lengths[i] < steps and i not in broken][:3]
    y[short, steps - 1] = (y[short, steps - 1] + 1) % 3  # a padded step changed: still right
    np.savez(tmp_path / "tags.npz", x=x, y=y, lengths=lengths)
    result = evaluate_json(capsys, run, tmp_path / "tags.npz")
    assert len(short) == 3 and result["exact_match"] == (n - len(broken)) / n
    real = np.arange(steps)[None, :] < lengths[:, None]
    assert result["accuracy"] == pytest.approx((probs.argmax(-1) == y)[real].mean())
    assert result["accuracy"] == pytest.approx(1 - len(broken) / lengths.sum())
    assert "perplexity" not in result  # no feedback: not a generation model
    assert main(["evaluate", str(run), str(tmp_path / "tags.npz")]) == 0
    line = capsys.readouterr().out.splitlines()[1]
    assert line.split("  ")[1:] == [f"accuracy {result['accuracy']:.4f}", f"exact_match {0.8:.4f}"]


def next_token_data(path: Path, n: int = 15, steps: int = 7) -> np.ndarray:
    text = np.random.default_rng(4).integers(1, 9, size=(n, steps))
    text[np.arange(steps)[None, :] >= real_steps(n, steps, seed=5)[:, None]] = 0
    np.savez(path, text=text)
    return text


def test_a_next_token_models_perplexity_is_exp_of_the_mean_cross_entropy_per_real_step(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = compiled(tmp_path / "run", CHARS)
    text = next_token_data(tmp_path / "held_out.npz")
    result = evaluate_json(capsys, run, tmp_path / "held_out.npz")
    probs = load(run / "model.onnx").predict({"text": text})["next"].astype(np.float64)
    lengths = (text != 0).sum(1)
    cross_entropy = [-np.log(probs[i, t, text[i, t + 1]]) for i in range(len(text)) for t in range(lengths[i] - 1)]
    assert len(cross_entropy) == lengths.sum() - len(text)  # each step predicts the next; the last has none
    assert result["perplexity"] == pytest.approx(np.exp(np.mean(cross_entropy)), rel=1e-6)
    assert result["perplexity"] == pytest.approx(np.exp(result["loss"]), rel=1e-12)
    assert 5 < result["perplexity"] < 15  # untrained: about the 9 ids' uniform choice
    right = [all(probs[i, t].argmax() == text[i, t + 1] for t in range(lengths[i] - 1))
             for i in range(len(text)) if lengths[i] > 1]  # a text of one id has no step to score
    assert result["exact_match"] == pytest.approx(np.mean(right))


def test_greedy_text_is_an_exact_match_unless_a_step_had_to_avoid_the_padding_id(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = compiled(tmp_path / "run", CHARS)
    n, steps = 12, 6
    lengths = real_steps(n, steps, seed=7, shortest=2)
    text = np.zeros((n, steps), np.int64)
    text[:, 0] = np.random.default_rng(8).integers(1, 9, size=n)
    predictor = load(run / "model.onnx")
    exact, wrong = np.ones(n, bool), 0
    for t in range(1, steps):  # each next id the model's choice, so every step is right...
        probs = predictor.predict({"text": text[:, :t]})["next"][:, t - 1]
        real = t < lengths
        padding = real & (probs.argmax(-1) == 0)  # ...but 0 pads: there the next best, a wrong step
        exact, wrong = exact & ~padding, wrong + padding.sum()
        text[:, t] = np.where(real, probs[:, 1:].argmax(-1) + 1, 0)
    np.savez(tmp_path / "greedy.npz", text=text)
    result = evaluate_json(capsys, run, tmp_path / "greedy.npz")
    assert result["exact_match"] == exact.mean()
    assert result["accuracy"] == pytest.approx(1 - wrong / (lengths - 1).sum())


def test_several_outputs_name_exact_match_after_the_per_step_classifier_only(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = compiled(tmp_path / "run", TWO_HEADS)
    n, steps = 10, 5
    x = np.random.default_rng(9).normal(size=(n, steps, 2)).astype(np.float32)
    out = load(run / "model.onnx").predict({"x": x})
    tags = out["tags"].argmax(-1)
    tags[[2, 7], 0] = (tags[[2, 7], 0] + 1) % 4
    np.savez(tmp_path / "val.npz", x=x, tags=tags, level=out["level"])
    result = evaluate_json(capsys, run, tmp_path / "val.npz")
    assert list(result)[:7] == ["samples", "loss", "tags_loss", "tags_accuracy", "tags_exact_match", "level_loss", "reports"]
    assert result["tags_exact_match"] == 0.8 and result["tags_accuracy"] == pytest.approx(1 - 2 / (n * steps))
    assert result["level_loss"] == pytest.approx(0.0, abs=1e-12)


RAW_TEXT = CHARS.replace("vocab_size: 9", "vocab_size: 10").replace("units: 9", "units: 10") + (
    "data:\n  train: train.txt\n  text: {tokenizer: char, lowercase: false, max_length: 6}\n")


def test_held_out_raw_text_is_read_through_the_vocabulary_the_model_carries(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rnnc.data import load_file
    from rnnc.spec import load_model
    from rnnc.text import Vocab

    vocab = Vocab(tuple("abc def"), "char", lowercase=False, max_length=6)  # ids 2-8; 1 unknown
    run = tmp_path / "run"
    run.mkdir()
    (run / "spec.yaml").write_text(RAW_TEXT)
    (run / "train.txt").write_text("abc def\n" * 3)
    (tmp_path / "vocab.json").write_text(vocab.to_json())
    with contextlib.redirect_stderr(io.StringIO()):
        assert main(["compile", str(run / "spec.yaml"), "--backend", "onnx", "--vocab", str(tmp_path / "vocab.json"),
                     "-o", str(run / "model.onnx")]) == 0
    (tmp_path / "held_out.txt").write_text("bad cage, faced a deed\n")  # 'g' and ',' unknown
    result = evaluate_json(capsys, run, tmp_path / "held_out.txt")
    samples = load_file(load_model(run / "spec.yaml"), tmp_path / "held_out.txt", vocab=vocab)
    ids, lengths, following = samples.inputs["text"], samples.lengths["text"], samples.targets["next"]
    assert result["samples"] == len(ids) > 1
    text = [vocab.tokens.index(c) + 2 if c in vocab.tokens else 1 for c in "bad cage, faced a deed"]
    assert [t for i in range(len(ids)) for t in ids[i, : lengths[i]]] + [following[-1, lengths[-1] - 1]] == text
    probs = load(run / "model.onnx").predict({"text": ids}, {"text": lengths})["next"].astype(np.float64)
    cross_entropy = [-np.log(probs[i, t, text[6 * i + t + 1]]) for i in range(len(ids)) for t in range(lengths[i])]
    assert len(cross_entropy) == len(text) - 1  # each character predicts the next, the pieces' last ones too
    assert result["perplexity"] == pytest.approx(np.exp(np.mean(cross_entropy)), rel=1e-6)


def test_exact_match_for_each_kind_of_classification_loss() -> None:
    from rnnc import ir
    from rnnc.metrics import sequence_scores

    mask = np.array([[True, True, False], [True, True, True], [False, False, False]])  # the last has no real step
    probs = np.array([[[0.9, 0.2], [0.1, 0.7], [0.9, 0.9]],
                      [[0.6, 0.4], [0.3, 0.8], [0.7, 0.1]],
                      [[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]]])
    binary = (probs > 0.5).astype(np.float32)
    binary[0, 2] = 1 - binary[0, 2]  # a padded step: no matter
    binary[1, 2, 1] = 1 - binary[1, 2, 1]  # one unit of one real step: the sequence is wrong
    assert sequence_scores(ir.Loss("binary_crossentropy"), probs, binary, mask) == {"exact_match": 0.5}
    one_hot = np.eye(2)[probs.argmax(-1)]
    assert sequence_scores(ir.Loss("categorical_crossentropy"), probs, one_hot, mask) == {"exact_match": 1.0}
    one_hot[0, 1] = one_hot[0, 1, ::-1]
    assert sequence_scores(ir.Loss("categorical_crossentropy"), probs, one_hot, mask) == {"exact_match": 0.5}
    assert sequence_scores(ir.Loss("categorical_crossentropy"), probs, one_hot) == {"exact_match": 2 / 3}  # no mask: all count
    assert sequence_scores(ir.Loss("mse"), probs, probs, mask) == {}
    assert sequence_scores(ir.Loss("sparse_categorical_crossentropy"), probs[:, 0], np.zeros(3)) == {}  # no time axis
