"""Addition as sequence to sequence: train with teacher forcing, score on held-out sums.

One command: `python examples/seq2seq_addition/run.py` trains `spec.yaml` with `rnnc
train` (an LSTM encoder over the question "123+45", an LSTM decoder started from the
encoder's final state that reads the answer so far, dot attention from the decoder's
steps over the encoder's, a softmax over the 14 tokens at every step; early stopping
on data/val.npz), then runs the exported model.onnx with onnxruntime
(`rnnc.runtime.load`) on the 2,000 test questions, none of which training saw, and
prints, teacher-forced (the decoder reads the true answer so far, as in training):

- per-step accuracy: the share of answer steps (each digit, then the end id) whose
  most probable token is the right one;
- exact match: the share of questions whose every step is right, so that greedy
  decoding would write the whole sum correctly (with teacher forcing, a wrong digit
  cannot derail the steps after it; decoding itself, feeding the model's own
  predictions back, is not in rnnc yet);
- the same for a model-free baseline: at each step of the answer, the token most
  common at that step in the training answers.

Extra arguments go to `rnnc train` (e.g. `--set training.epochs=2`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

import rnnc.cli

# `rnnc train` below runs in this process, on one torch thread unless OMP_NUM_THREADS
# says otherwise: these small recurrent steps gain nothing from more, and lose a lot on
# a busy machine. torch reads the variable once, when it is first imported (by `rnnc
# train`, not by anything above), so the default is set here, before that.
os.environ.setdefault("OMP_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent
PLUS, END = 11, 13  # as prepare.py


def text(row: np.ndarray) -> str:
    """Token ids as characters: digits and "+", the others dropped."""
    return "".join("+" if i == PLUS else str(i - 1) for i in row if 1 <= i <= PLUS)


def targets(answer_in: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(what each step should predict: answer_in's next token; which steps count: every
    real step but the last, the end id, which has no next), as rnnc trains on them."""
    following = np.zeros_like(answer_in)
    following[:, :-1] = answer_in[:, 1:]
    lengths = (answer_in != 0).sum(1)
    return following, np.arange(answer_in.shape[1])[None, :] < (lengths - 1)[:, None]


def scores(predicted: np.ndarray, following: np.ndarray, counted: np.ndarray) -> tuple[float, float]:
    right = (predicted == following) | ~counted
    return float(right[counted].mean()), float(right.all(1).mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", type=Path, default=Path("runs/add-numbers"), help="where rnnc train writes (default: runs/add-numbers)")
    args, extra = parser.parse_known_args()
    if status := rnnc.cli.main(["train", str(HERE / "spec.yaml"), "-o", str(args.run_dir), "--no-progress", *extra]):
        return status

    from rnnc.runtime import load

    test = {k: v.astype(np.int64) for k, v in np.load(HERE / "data" / "test.npz").items()}
    probabilities = load(args.run_dir / "model.onnx").predict(test)["answer"]
    predicted = probabilities.argmax(-1)
    following, counted = targets(test["answer_in"])
    steps, exact = scores(predicted, following, counted)

    train_answers = np.load(HERE / "data" / "train.npz")["answer_in"].astype(np.int64)
    train_following, train_counted = targets(train_answers)
    common = np.array([np.bincount(train_following[train_counted[:, t], t], minlength=14).argmax()
                       for t in range(following.shape[1])])  # the most common token at each step
    base_steps, base_exact = scores(np.broadcast_to(common, following.shape), following, counted)

    n = len(following)
    print(f"\ntest: {n} questions never seen in training, {int(counted.sum())} answer steps (digits and end), teacher-forced")
    print(f"  per-step accuracy {steps:.4f}  exact match {exact:.4f} ({round(exact * n)}/{n})  LSTM encoder-decoder with attention (model.onnx)")
    print(f"  per-step accuracy {base_steps:.4f}  exact match {base_exact:.4f}  the most common token at each step (no model)")
    print(f"\nevery {n // 8}th test question (teacher-forced predictions; decoding is not in rnnc yet):")
    for i in range(0, n, n // 8)[:8]:
        q, truth = text(test["question"][i]), text(test["answer_in"][i])
        guess = text(np.where(counted[i], predicted[i], 0))
        print(f"  {q:>8s} = {truth:<5s} predicted {guess:<5s} {'right' if guess == truth else 'WRONG'}")
    print(f"\nper-step accuracy {steps:.4f}, exact match {exact:.4f} (teacher-forced, {n} held-out questions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
