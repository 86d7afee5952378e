"""Which language is a word written in? A graph with attention pooling, and where it looks.

One command: `python examples/lang_attention/run.py` trains `spec.yaml` with `rnnc
train` (character ids, a mask_zero embedding, a bidirectional GRU returning every
step, attention pooling with a learned query, a softmax over six languages; early
stopping on data/val.npz), and, for the comparison, the v1 chain of examples/lang_id
(the same words as raw text; its GRU keeps only its final states). Both exported
models run with onnxruntime (`rnnc.runtime.load`) on the 3,000 test words; printed:
each one's accuracy and confusion matrix, and the majority baseline (the most common
training language, which on these balanced splits is 1 in 6).

Then the picture: which characters the attention weighs, for the six words for
"butterfly" in examples/lang_id/words.txt and a test word of each language (drawn
with a fixed seed), each labelled with the predicted language and its probability.
The weights come from the torch module of the same spec and trained weights
(`rnnc_torch.graph.GraphModule`, whose attention block keeps its last weights when
`keep_weights` is set); its probabilities are checked against the ONNX model's, so the
picture is the deployed model's view. Written to <run dir>/attention.png (matplotlib).
Extra arguments go to the graph's `rnnc train` (e.g. `--set training.seed=1`),
`--v1-set KEY=VALUE` to the v1 run's; with `--reuse-v1` the v1 model already in
`--v1-run-dir` is used as it is.
"""

from __future__ import annotations

import argparse
import json
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
V1 = HERE.parent / "lang_id"


def train(spec: Path, run_dir: Path, extra: list[str]) -> int:
    return rnnc.cli.main(["train", str(spec), "-o", str(run_dir), "--no-progress", *extra])


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


def encode(words: list[str], chars: list[str]) -> np.ndarray:
    """Character ids as prepare.py makes them (lower case; 1 for a character unseen in training)."""
    ids = {c: i for i, c in enumerate(chars) if i >= 2}
    out = np.zeros((len(words), max(len(w) for w in words)), np.int64)
    for row, word in enumerate(words):
        out[row, : len(word)] = [ids.get(c, 1) for c in word.lower()]
    return out


def decode(row: np.ndarray, chars: list[str]) -> str:
    return "".join(chars[i] if i >= 2 else "?" for i in row if i != 0)


def attention_weights(run_dir: Path, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the attention's weights [words, steps], the probabilities) of the trained graph
    in torch, on `ids`."""
    import torch

    from rnnc.artifacts import load_weights
    from rnnc.spec import load_model
    from rnnc_torch.graph import GraphModule
    from rnnc_torch.graph_blocks import AttentionBlock

    model = load_model(run_dir / "spec.yaml")
    module = GraphModule(model)
    module.load_ir_state(load_weights(run_dir / "weights.safetensors", model))
    module.eval()
    (block,) = [b for b in module.modules() if isinstance(b, AttentionBlock)]
    block.keep_weights = True
    with torch.inference_mode():
        probabilities = module({"word": torch.from_numpy(ids)})["language"].numpy()
    assert block.last_weights is not None
    return block.last_weights.numpy(), probabilities


def draw(path: Path, rows: list[tuple[str, np.ndarray, str]], split: int) -> None:
    """One row per word: its characters shaded by their attention weight, and a label;
    a line after the first `split` rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = max(len(word) for word, _, _ in rows)
    fig, ax = plt.subplots(figsize=(0.42 * steps + 4.2, 0.42 * len(rows) + 0.9))
    grid = np.full((len(rows), steps), np.nan)
    for r, (word, weights, _) in enumerate(rows):
        grid[r, : len(word)] = weights[: len(word)]
    image = ax.imshow(grid, cmap="Blues", vmin=0, vmax=float(np.nanmax(grid)), aspect="auto")
    for r, (word, weights, label) in enumerate(rows):
        for c, char in enumerate(word):
            ax.text(c, r, char, ha="center", va="center", fontsize=11,
                    color="white" if weights[c] > 0.6 * np.nanmax(grid) else "black")
        ax.text(steps - 0.3, r, "  " + label, ha="left", va="center", fontsize=9)
    ax.axhline(split - 0.5, color="black", linewidth=1.5)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_frame_on(False)
    ax.set_title("attention pooling: the weight of each character (a row sums to 1)\n"
                 "above the line 'butterfly' in six languages, below it test words", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.025, pad=0.2, label="weight")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def picture(run_dir: Path, graph, test: dict[str, np.ndarray], classes: list[str], chars: list[str]) -> None:
    butterflies = (V1 / "words.txt").read_text(encoding="utf-8").split()
    lengths = (test["word"] != 0).sum(1)
    rng = np.random.default_rng(0)  # one test word of 7 letters or more per language, the same every run
    picks = [int(rng.choice(np.flatnonzero((test["language"] == k) & (lengths >= 7)))) for k in range(len(classes))]
    words = butterflies + [decode(test["word"][i], chars) for i in picks]
    truths = ["butterfly"] * len(butterflies) + [classes[int(test["language"][i])] for i in picks]
    ids = encode(words, chars)
    weights, probabilities = attention_weights(run_dir, ids)
    deployed = graph.predict({"word": ids})["language"]
    gap = float(np.abs(probabilities - deployed).max())
    assert gap < 1e-4, f"torch and onnxruntime disagree by {gap}"
    rows = []
    print("\nattention weights (torch GraphModule, the same weights; probabilities within "
          f"{gap:.1e} of model.onnx's):")
    for word, truth, w, p in zip(words, truths, weights, probabilities, strict=True):
        best = int(p.argmax())
        label = f"{classes[best]} {p[best]:.2f}" + ("" if truth == "butterfly" else f", is {truth}" if truth != classes[best] else ", right")
        top = ", ".join(f"{word[i]}@{i} {w[i]:.2f}" for i in np.argsort(-w[: len(word)])[:3])
        print(f"  {word:16s} {label:28s} most weight: {top}")
        rows.append((word, w, label))
    try:
        draw(run_dir / "attention.png", rows, len(butterflies))
    except ImportError:
        print("(matplotlib is not installed: no picture; pip install matplotlib)")
        return
    print(f"picture: {run_dir / 'attention.png'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", type=Path, default=Path("runs/lang-attention"), help="where rnnc train writes (default: runs/lang-attention)")
    parser.add_argument("--v1-run-dir", type=Path, default=Path("runs/lang-id"), help="where the v1 lang_id run goes (default: runs/lang-id)")
    parser.add_argument("--v1-set", action="append", default=[], metavar="KEY=VALUE", help="a setting for the v1 run only")
    parser.add_argument("--reuse-v1", action="store_true", help="use the v1 run already in --v1-run-dir instead of training it")
    args, extra = parser.parse_known_args()
    if status := train(HERE / "spec.yaml", args.run_dir, extra):
        return status
    if not args.reuse_v1 and (status := train(V1 / "spec.yaml", args.v1_run_dir, [f"--set={s}" for s in args.v1_set])):
        return status

    from rnnc.runtime import load

    chars = json.loads((HERE / "data" / "vocab.json").read_text(encoding="utf-8"))
    test = dict(np.load(HERE / "data" / "test.npz"))
    train_labels = np.load(HERE / "data" / "train.npz")["language"]
    classes = [str(c) for c in test["language_classes"]]
    graph = load(args.run_dir / "model.onnx")
    truth = test["language"].astype(np.int64)
    ours = report("attention (this graph, model.onnx on onnxruntime)", truth,
                  graph.predict({"word": test["word"]})["language"].argmax(1), classes)
    chain = load(args.v1_run_dir / "model.onnx")
    assert chain.classes == classes
    words = [decode(row, chars) for row in test["word"]]
    v1 = report("GRU final states (v1 lang_id, model.onnx on onnxruntime)", truth, chain.predict_texts(words).argmax(1), classes)
    majority = int(np.bincount(train_labels).argmax())
    baseline = float((truth == majority).mean())
    print(f"\nmajority baseline (always {classes[majority]}): test accuracy {baseline:.4f}")
    print(f"\nattention {ours:.4f} vs v1 GRU {v1:.4f} vs majority {baseline:.4f}")
    picture(args.run_dir, graph, test, classes, chars)
    return 0


if __name__ == "__main__":
    sys.exit(main())
