"""Addition as sequence to sequence: train with teacher forcing, decode held-out sums.

One command: `python examples/seq2seq_addition/run.py` trains `spec.yaml` with `rnnc
train` (an LSTM encoder over the question "123+45", an LSTM decoder started from the
encoder's final state that reads the answer so far, dot attention from the decoder's
steps over the encoder's, a softmax over the 14 tokens at every step; early stopping
on data/val.npz), then runs the exported model.onnx with onnxruntime
(`rnnc.runtime.load`) on the 2,000 test questions, none of which training saw, and
prints, teacher-forced (the decoder reads the true answer so far, as in training):

- per-step accuracy: the share of answer steps (each digit, then the end id) whose
  most probable token is the right one;
- exact match: the share of questions whose every step is right (with teacher
  forcing, a wrong digit cannot derail the steps after it);
- the same for a model-free baseline: at each step of the answer, the token most
  common at that step in the training answers.

Then it decodes the same questions with no answer given (`rnnc.runtime_decode`, what
`rnnc predict RUN_DIR test.npz [--beam K]` runs): the encoder graph once per question,
the decoder step graph from the start id, each chosen token fed back, until the end id
or 5 tokens; greedy, and beam search of `--beam` (default 3). A decoded answer is right
when its digits and its end id are the true ones.

Extra arguments go to `rnnc train` (e.g. `--set training.epochs=2`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
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


def decoded_right(ids: np.ndarray, answer_in: np.ndarray) -> np.ndarray:
    """[N] bool: each decoded answer (digits, then the end id, zeros after) is the true
    one, answer_in without its start id."""
    truth = np.zeros((len(answer_in), max(ids.shape[1], answer_in.shape[1] - 1)), np.int64)
    truth[:, : answer_in.shape[1] - 1] = answer_in[:, 1:]
    written = np.zeros_like(truth)
    written[:, : ids.shape[1]] = ids
    return (written == truth).all(1)


def decode(run_dir: Path, test: dict[str, np.ndarray], beam: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(decoded ids [N, 5], right [N], log-probabilities [N], seconds) of decoding the
    test questions with `beam`."""
    from rnnc.runtime_decode import load_decoder

    decoder = load_decoder(run_dir / "model.onnx")
    started = time.perf_counter()
    decoded = decoder.decode({"question": test["question"]}, beam=beam)
    seconds = time.perf_counter() - started
    return decoded.ids, decoded_right(decoded.ids, test["answer_in"]), decoded.log_probs, seconds


def likelier_answers(run_dir: Path, questions: np.ndarray, log_probs: np.ndarray) -> int:
    """How many of `questions` have an answer the model finds likelier than its greedy
    one (`log_probs`): an exhaustive search, pruned where a prefix is already less
    likely (a longer answer is never likelier than its prefix), over every answer up to
    the end id or 5 tokens."""
    from rnnc.runtime_decode import load_decoder

    decoder = load_decoder(run_dir / "model.onnx")
    start, end, most = decoder.plan.start, decoder.plan.end, decoder.plan.max_length

    def best_below(token: int, states: dict, depth: int, score: float, bound: float) -> float:
        probs, states = decoder.step(np.array([[token]]), states)
        for nxt, lp in sorted(enumerate(np.log(np.maximum(probs[0, -1].astype(np.float64), 1e-30))), key=lambda t: -t[1]):
            if score + lp <= bound + 1e-6:  # no likelier than the best so far: neither is what follows
                break
            bound = score + lp if nxt == end or depth + 1 == most else best_below(nxt, states, depth + 1, score + lp, bound)
        return bound

    found = 0
    for i in range(len(questions)):
        states = decoder.encode({"question": questions[i : i + 1]})
        found += best_below(start, states, 0, 0.0, float(log_probs[i])) > log_probs[i] + 1e-6
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", type=Path, default=Path("runs/add-numbers"), help="where rnnc train writes (default: runs/add-numbers)")
    parser.add_argument("--beam", type=int, default=3, help="the beam of beam search (default: 3)")
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

    greedy_ids, greedy_right, greedy_log_probs, greedy_s = decode(args.run_dir, test, 1)
    beam_ids, beam_right, _, beam_s = decode(args.run_dir, test, args.beam)
    print(f"\ndecoded ({n} questions, no answer given: each token fed back, from the start id to the end id):")
    print(f"  exact match {greedy_right.mean():.4f} ({greedy_right.sum()}/{n})  greedy   ({greedy_s:.2f} s)")
    print(f"  exact match {beam_right.mean():.4f} ({beam_right.sum()}/{n})  beam {args.beam}   ({beam_s:.2f} s)")
    changed = (greedy_ids != beam_ids).any(1)
    print(f"  beam {args.beam} writes {changed.sum()} answers otherwise than greedy: {(beam_right & ~greedy_right).sum()} "
          f"now right, {(greedy_right & ~beam_right).sum()} now wrong")
    wrong = ~greedy_right
    likelier = likelier_answers(args.run_dir, test["question"][wrong], greedy_log_probs[wrong])
    print(f"  an exhaustive search finds an answer likelier than greedy's for {likelier} of the {wrong.sum()} questions "
          "greedy gets wrong")
    forced_right = ((predicted == following) | ~counted).all(1)
    print(f"  greedy decoding and teacher forcing agree on {(greedy_right == forced_right).sum()}/{n} questions "
          "(greedy is right where every teacher-forced step is: it then reads the true answer so far)")

    print(f"\nevery {n // 8}th test question (teacher-forced, then decoded greedily and by beam {args.beam}):")
    print(f"  {'question':>8s}   {'sum':<5s}  {'teacher-forced':<14s}  {'greedy':<14s}  beam {args.beam}")
    for i in range(0, n, n // 8)[:8]:
        q, truth = text(test["question"][i]), text(test["answer_in"][i])
        forced = text(np.where(counted[i], predicted[i], 0))
        guesses = [(forced, forced_right[i]), (text(greedy_ids[i]), greedy_right[i]), (text(beam_ids[i]), beam_right[i])]
        print(f"  {q:>8s} = {truth:<5s}" + "".join(f"  {g:<5s} {'right' if ok else 'WRONG':<8s}" for g, ok in guesses).rstrip())
    missed = np.flatnonzero(~greedy_right)[:4]
    if len(missed):
        print(f"\n{len(missed)} of the {(~greedy_right).sum()} questions greedy decoding gets wrong, and the probability "
              "the model gives its answer:")
    for i in missed:
        q, truth = text(test["question"][i]), text(test["answer_in"][i])
        print(f"  {q:>8s} = {truth:<5s}  {text(greedy_ids[i]):<5s} {np.exp(greedy_log_probs[i]):.2f}")
    print(f"\nper-step accuracy {steps:.4f}, exact match {exact:.4f} (teacher-forced); decoded exact match "
          f"{greedy_right.mean():.4f} greedy, {beam_right.mean():.4f} beam {args.beam} ({n} held-out questions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
