"""A character-level generator of the King James Bible: train, score held-out text, sample.

One command: `python examples/char_generator/run.py` trains `spec.yaml` with `rnnc
train` (a GRU of 256 units reading one character at a time; the output at each step
is a softmax over the next character, `feedback: text`; `data.text` reads each .txt
as one stream of characters cut into samples of 100), then, with onnxruntime and
numpy alone:

- scores the held-out test text (John 1-11; training read Genesis, Exodus, Matthew and
  Mark) through the exported `model.onnx`, teacher-forced: the perplexity per
  character, exp of the mean cross-entropy over every predicted character, once over
  the 100-character samples training scores (its log is `rnnc train`'s test
  loss), once over the whole text in one pass (the state carried from its start);
- scores the same characters with character n-gram models (interpolated Kneser-Ney,
  `ngram.py`) counted on the same training text: of order 5, and of the order from 3
  to 10 that scores best on the validation text;
- prints a sample from `rnnc generate` (a fixed prompt and seed, so the same text
  every time for the same weights).

Extra arguments go to `rnnc train` (e.g. `--set training.epochs=1`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import rnnc.cli

# `rnnc train` below runs in this process, on one torch thread unless OMP_NUM_THREADS
# says otherwise: a GRU of 256 units gains little from a second core, and loses a lot
# on a busy machine. torch reads it once, when `rnnc train` first imports it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent
from ngram import KneserNey  # noqa: E402  (beside this script, on its path when run as one)

PROMPT, SEED, TOKENS, TEMPERATURE = "And God said", 0, 300, 0.8


def encode(text: str, tokens: tuple[str, ...]) -> np.ndarray:
    """The ids rnnc gives each character: 2 + its rank in the vocabulary, 1 if unknown."""
    index = {t: i + 2 for i, t in enumerate(tokens)}
    return np.array([index.get(c, 1) for c in text], np.int64)


def cross_entropy(session, ids: np.ndarray, steps: int | None) -> np.ndarray:  # noqa: ANN001
    """-ln p(next character) at every predicted position of `ids` (1 to n-1), through
    the ONNX model: in samples of `steps` (as rnnc cuts the stream), or in one pass."""
    x, y = ids[:-1], ids[1:]
    if steps is None:
        probs = session.run(None, {"text": x[None], "text.lengths": np.array([len(x)])})[0][0]
        return -np.log(probs[np.arange(len(y)), y])
    out = []
    for start in range(0, len(x), 64 * steps):  # 64 samples per run
        pieces = [(x[s : s + steps], y[s : s + steps]) for s in range(start, min(len(x), start + 64 * steps), steps)]
        batch = np.zeros((len(pieces), steps), np.int64)
        lengths = np.array([len(p) for p, _ in pieces])
        for i, (p, _) in enumerate(pieces):
            batch[i, : len(p)] = p
        probs = session.run(None, {"text": batch, "text.lengths": lengths})[0]
        out += [-np.log(probs[i, np.arange(len(t)), t]) for i, (_, t) in enumerate(pieces)]
    return np.concatenate(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default="runs/kjv-chars", help="where rnnc train writes the run (default: runs/kjv-chars)")
    parser.add_argument("--skip-train", action="store_true", help="score and sample the run already in --run-dir")
    parser.add_argument("--max-order", type=int, default=10, help="the n-gram orders tried on validation: 3 to this (default 10)")
    args, train_args = parser.parse_known_args()
    run = Path(args.run_dir)
    if not args.skip_train:
        started = time.perf_counter()
        status = rnnc.cli.main(["train", str(HERE / "spec.yaml"), "-o", str(run), "--no-progress", *train_args])
        if status != 0:
            return status
        print(f"trained in {time.perf_counter() - started:.0f} s")

    import onnxruntime as ort

    from rnnc.text import METADATA_KEY, Vocab

    session = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    vocab = Vocab.from_json(session.get_modelmeta().custom_metadata_map[METADATA_KEY], str(run / "model.onnx"))
    train_text = (HERE / "data" / "train.txt").read_text(encoding="utf-8").strip()  # rnnc's char tokenizer strips
    test_text = (HERE / "data" / "test.txt").read_text(encoding="utf-8").strip()
    ids = encode(test_text, vocab.tokens)
    chunked = cross_entropy(session, ids, vocab.max_length)
    whole = cross_entropy(session, ids, None)
    valid_text = (HERE / "data" / "valid.txt").read_text(encoding="utf-8").strip()
    started = time.perf_counter()
    orders = range(3, max(5, args.max_order) + 1)
    fitted = {order: KneserNey(order).fit(train_text) for order in orders}
    on_valid = {order: -m.log_probs(valid_text, vocab.tokens).mean() for order, m in fitted.items()}
    best = min(on_valid, key=lambda order: on_valid[order])  # the order validation picks
    ngram = -fitted[5].log_probs(test_text, vocab.tokens)
    picked = -fitted[best].log_probs(test_text, vocab.tokens)
    counted = time.perf_counter() - started
    assert len(chunked) == len(whole) == len(ngram) == len(test_text) - 1

    print(f"\ntest: data/test.txt, {len(test_text):,} characters, {len(ngram):,} predicted "
          f"(vocabulary of {len(vocab.tokens)} training characters, unknown {int((ids == 1).sum())})")
    print("  per-character perplexity, cross-entropy in bits:")
    for what, ce in (
        (f"GRU (model.onnx), {vocab.max_length}-character samples as training scores them", chunked),
        ("GRU (model.onnx), the whole text in one pass", whole),
        ("order-5 Kneser-Ney character n-gram, same training text", ngram),
        (f"order-{best} Kneser-Ney character n-gram, the order of {orders[0]}-{orders[-1]} best on validation", picked),
    ):
        print(f"  {np.exp(ce.mean()):7.3f}  {ce.mean() / np.log(2):.3f} bits  {what}")
    print(f"  (the n-grams: {counted:.0f} s to count and score; validation perplexity by order: "
          + ", ".join(f"{o}: {np.exp(v):.2f}" for o, v in on_valid.items()) + ")")

    print(f"\nrnnc generate {run} --prompt {PROMPT!r} -n {TOKENS} --temperature {TEMPERATURE} --seed {SEED}:")
    sys.stdout.flush()
    command = [sys.executable, "-m", "rnnc", "generate", str(run), "--prompt", PROMPT, "-n", str(TOKENS),
               "--temperature", str(TEMPERATURE), "--seed", str(SEED)]
    if subprocess.run(command).returncode != 0:
        print("(rnnc generate failed; see above)")
    print(f"\nperplexity {np.exp(chunked.mean()):.3f} per character, {np.exp(whole.mean()):.3f} in one pass "
          f"(order-5 n-gram {np.exp(ngram.mean()):.3f}, order-{best} {np.exp(picked.mean()):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
