"""Which language is a word written in? Train, evaluate, and compare with Naive Bayes.

One command: `python examples/lang_id/run.py` trains `spec.yaml` with `rnnc train`
(a character-level bidirectional GRU, on data/train.csv with data/val.csv for early
stopping), runs the exported model.onnx on the held-out data/test.csv with
onnxruntime, prints its accuracy and confusion matrix, and does the same for a
character-bigram Naive Bayes classifier (numpy, add-one smoothing) trained on the same
training words. Extra arguments go to `rnnc train` (e.g. `--set training.epochs=1`).
The data comes from Debian's word lists; `prepare.py` rebuilds it.
"""

from __future__ import annotations

import argparse
import csv
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


def read(split: str) -> tuple[list[str], list[str]]:
    with (HERE / "data" / f"{split}.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [r["word"] for r in rows], [r["language"] for r in rows]


def bigrams(word: str) -> list[str]:
    padded = f"^{word.lower()}$"
    return [padded[i : i + 2] for i in range(len(padded) - 1)]


def naive_bayes(train_words: list[str], train_labels: list[str], classes: list[str], words: list[str]) -> np.ndarray:
    """Class ids for `words` by a multinomial Naive Bayes over character bigrams (with
    word-boundary marks), add-one smoothing and the training set's class priors."""
    index: dict[str, int] = {}
    for word in train_words:
        for gram in bigrams(word):
            index.setdefault(gram, len(index))
    counts = np.zeros((len(classes), len(index) + 1))  # the last column: an unseen bigram
    for word, label in zip(train_words, train_labels, strict=True):
        for gram in bigrams(word):
            counts[classes.index(label), index[gram]] += 1
    log_p = np.log((counts + 1) / (counts.sum(1, keepdims=True) + counts.shape[1]))
    prior = np.log(np.array([train_labels.count(c) for c in classes]) / len(train_labels))
    scores = np.array([log_p[:, [index.get(g, len(index)) for g in bigrams(w)]].sum(1) + prior for w in words])
    return scores.argmax(1)


def report(name: str, truth: np.ndarray, predicted: np.ndarray, classes: list[str]) -> float:
    accuracy = float((truth == predicted).mean())
    print(f"\n{name}: test accuracy {accuracy:.4f} ({int((truth == predicted).sum())}/{len(truth)})")
    width = max(len(c) for c in classes)
    print(" " * (width + 2) + "predicted: " + " ".join(f"{c[:7]:>7s}" for c in classes))
    confusion = np.zeros((len(classes), len(classes)), dtype=int)
    np.add.at(confusion, (truth, predicted), 1)
    for i, c in enumerate(classes):
        print(f"  {c:>{width}s}           " + " ".join(f"{n:7d}" for n in confusion[i]))
    return accuracy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", type=Path, default=Path("runs/lang-id"), help="where rnnc train writes (default: runs/lang-id)")
    args, extra = parser.parse_known_args()
    status = rnnc.cli.main(["train", str(HERE / "spec.yaml"), "-o", str(args.run_dir), "--no-progress", *extra])
    if status:
        return status

    from rnnc.runtime import Predictor

    predictor = Predictor(args.run_dir / "model.onnx")
    classes = predictor.classes
    assert classes is not None
    words, labels = read("test")
    truth = np.array([classes.index(label) for label in labels])
    gru = report("GRU (rnnc, model.onnx on onnxruntime)", truth, predictor.predict_texts(words).argmax(1), classes)
    train_words, train_labels = read("train")
    bayes = report("character-bigram Naive Bayes", truth, naive_bayes(train_words, train_labels, classes, words), classes)
    print(f"\nGRU {gru:.4f} vs Naive Bayes {bayes:.4f}: {100 * (gru - bayes):+.1f} points")
    return 0


if __name__ == "__main__":
    sys.exit(main())
