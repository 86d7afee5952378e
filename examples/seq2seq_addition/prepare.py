"""Generate the seq2seq_addition example's data: sums of two numbers, as text.

As Keras's addition example (examples/nlp/addition_rnn.py): two numbers of 1 to 3
digits, each length equally likely, written "a+b"; the answer is their sum. Every
question occurs once (a+b and b+a count as one), drawn with a fixed seed, and the
splits share none. Tokens (spec.yaml's vocab_size 14):

    0 pads   1-10 the digits 0-9   11 "+"   12 start   13 end

Each split's data/<split>.npz holds the arrays named after spec.yaml's inputs:

- `question` [N, 7]: "123+45" as ids, padded with 0 at the end;
- `answer_in` [N, 6]: start, the digits of the sum, end ("168": 12 2 7 9 13), padded.

The output `answer` (feedback on answer_in) predicts at each step what answer_in holds
at the next; its targets are not stored: with feedback, a missing target array is
answer_in shifted left by one step, the last real step (the end id, with no next)
unscored. So the decoder learns the sum's digits and then the end id.

To keep the shipped files small (examples/*/data stays under 1 MB together), the ids
are stored as uint8 (rnnc reads any integer ids as int64) and each file's rows are
sorted by question, which compresses them by a third (training shuffles every epoch).
numpy only, seeded: the same files on every machine (np.savez_compressed).

    python examples/seq2seq_addition/prepare.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

DIGITS = 3
SPLITS = {"train": 28_000, "val": 1_000, "test": 2_000}
SEED = 0
PAD, PLUS, START, END = 0, 11, 12, 13
HERE = Path(__file__).resolve().parent


def number(rng: np.random.Generator) -> int:
    """1 to DIGITS digits, each count equally likely (a leading 0 shortens it, as in Keras)."""
    return int("".join(str(d) for d in rng.integers(0, 10, size=rng.integers(1, DIGITS + 1))))


def ids(text: str) -> list[int]:
    return [PLUS if c == "+" else int(c) + 1 for c in text]


def text(row: np.ndarray) -> str:
    """ids -> characters, padding, start and end dropped (run.py prints answers with it)."""
    return "".join("+" if i == PLUS else str(i - 1) for i in row if 1 <= i <= PLUS)


def questions(rng: np.random.Generator, count: int) -> list[tuple[int, int]]:
    seen: set[tuple[int, int]] = set()
    pairs = []
    while len(pairs) < count:
        a, b = number(rng), number(rng)
        if (key := (min(a, b), max(a, b))) not in seen:
            seen.add(key)
            pairs.append((a, b))
    return pairs


def encode(pairs: list[tuple[int, int]]) -> dict[str, np.ndarray]:
    question = np.zeros((len(pairs), 2 * DIGITS + 1), np.uint8)
    answer_in = np.zeros((len(pairs), DIGITS + 1 + 2), np.uint8)
    for row, (a, b) in enumerate(pairs):
        q, s = ids(f"{a}+{b}"), [START, *ids(str(a + b)), END]
        question[row, : len(q)] = q
        answer_in[row, : len(s)] = s
    order = np.lexsort(question.T[::-1])
    return {"question": question[order], "answer_in": answer_in[order]}


def main() -> int:
    rng = np.random.default_rng(SEED)
    pairs = questions(rng, sum(SPLITS.values()))
    (HERE / "data").mkdir(exist_ok=True)
    start = 0
    for split, count in SPLITS.items():
        arrays = encode(pairs[start : start + count])
        start += count
        np.savez_compressed(HERE / "data" / f"{split}.npz", **arrays)
        size = (HERE / "data" / f"{split}.npz").stat().st_size
        print(f"wrote data/{split}.npz: {count} questions, {size / 1000:.0f} KB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
