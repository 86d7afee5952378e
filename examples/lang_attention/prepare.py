"""Build the lang_attention example's data from the lang_id example's words.

Reads examples/lang_id/data/{train,val,test}.csv (single words of six languages from
Debian's word lists, prepared by that example's prepare.py: 4,000 training, 500
validation and 500 test words per language) and writes, per split, data/<split>.npz
with the arrays spec.yaml's input and output are named after:

- `word` [N, 16]: character ids, padded with 0 at the end (mask_zero's padding);
- `language` [N]: the class id, and `language_classes` the six names;

and data/vocab.json, the characters in id order (id 0 pads, 1 stands for a character
the training words never use, then the training words' characters, most frequent
first: the same rule as the char tokenizer of lang_id's `data.text`, max_vocab 64).
A graph reads `.npz` arrays, not raw text, so the ids are made here. To keep the
shipped files small (examples/*/data stays under 1 MB together), the ids are stored as
uint8 (rnnc reads any integer ids as int64) and each file's rows are sorted by language
and word, which compresses them to half (training shuffles every epoch; accuracy does
not depend on the order). numpy only; np.savez_compressed, about 150 KB in all.

    python examples/lang_attention/prepare.py
"""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

MAX_LENGTH, MAX_VOCAB = 16, 64  # as lang_id's data.text
HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "lang_id" / "data"


def read(split: str) -> tuple[list[str], list[str]]:
    with (SOURCE / f"{split}.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [r["word"] for r in rows], [r["language"] for r in rows]


def main() -> int:
    missing = [s for s in ("train", "val", "test") if not (SOURCE / f"{s}.csv").is_file()]
    if missing:
        print(f"missing {', '.join(f'{SOURCE}/{s}.csv' for s in missing)}: run examples/lang_id/prepare.py first", file=sys.stderr)
        return 2
    words, labels = read("train")
    counts = Counter(c for w in words for c in w)
    chars = sorted(counts, key=lambda c: (-counts[c], c))[:MAX_VOCAB]  # ties by character: a stable order
    ids = {c: i + 2 for i, c in enumerate(chars)}
    classes = sorted(set(labels))
    (HERE / "data").mkdir(exist_ok=True)
    (HERE / "data" / "vocab.json").write_text(json.dumps(["<pad>", "<unk>", *chars], ensure_ascii=False) + "\n", encoding="utf-8")
    for split in ("train", "val", "test"):
        words, labels = read(split)
        word = np.zeros((len(words), MAX_LENGTH), np.uint8)
        for row, w in enumerate(words):
            word[row, : len(w)] = [ids.get(c, 1) for c in w[:MAX_LENGTH]]
        language = np.array([classes.index(label) for label in labels], np.uint8)
        order = np.lexsort((*word.T[::-1], language))  # by language, then word
        np.savez_compressed(HERE / "data" / f"{split}.npz", word=word[order], language=language[order],
                            language_classes=np.array(classes))
        size = (HERE / "data" / f"{split}.npz").stat().st_size
        print(f"wrote data/{split}.npz: {len(words)} words, {size / 1000:.0f} KB", file=sys.stderr)
    print(f"vocabulary: {len(chars)} characters + padding and unknown = vocab_size {len(chars) + 2}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
