"""Build the lang_id example's data from the word lists Debian ships.

Reads /usr/share/dict/{american-english, ngerman, french, spanish, italian, dutch}
(Debian packages wamerican, wngerman, wfrench, wspanish, witalian, wdutch), keeps
lower-cased words of 3 to 16 letters (letters only: no apostrophes, hyphens, spaces or
digits), drops every word that occurs in more than one list (it has no single answer),
and draws, with a fixed seed, the same number of words per language for each split.
Writes data/{train,val,test}.csv (columns word, language), a few hundred KB in all.

    apt-get install -y wamerican wngerman wfrench wspanish witalian wdutch
    python examples/lang_id/prepare.py
"""

from __future__ import annotations

import csv
import sys
import unicodedata
from pathlib import Path

import numpy as np

LISTS = {
    "english": "american-english",
    "german": "ngerman",
    "french": "french",
    "spanish": "spanish",
    "italian": "italian",
    "dutch": "dutch",
}
SPLITS = {"train": 4000, "val": 500, "test": 500}  # words per language
SEED = 0
DICT = Path("/usr/share/dict")
HERE = Path(__file__).resolve().parent


def words_of(path: Path) -> set[str]:
    words = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        word = unicodedata.normalize("NFC", line.strip()).lower()
        if 3 <= len(word) <= 16 and word.isalpha():
            words.add(word)
    return words


def main() -> int:
    missing = [name for name in LISTS.values() if not (DICT / name).exists()]
    if missing:
        print(f"missing word lists in {DICT}: {', '.join(missing)}; "
              "apt-get install -y wamerican wngerman wfrench wspanish witalian wdutch", file=sys.stderr)
        return 2
    lists = {language: words_of(DICT / name) for language, name in LISTS.items()}
    seen: dict[str, int] = {}
    for words in lists.values():
        for word in words:
            seen[word] = seen.get(word, 0) + 1
    rng = np.random.default_rng(SEED)
    rows: dict[str, list[tuple[str, str]]] = {split: [] for split in SPLITS}
    for language, words in lists.items():
        unique = sorted(w for w in words if seen[w] == 1)  # sorted first: set order is not stable
        picked = rng.choice(len(unique), size=sum(SPLITS.values()), replace=False)
        start = 0
        for split, count in SPLITS.items():
            rows[split] += [(unique[i], language) for i in picked[start : start + count]]
            start += count
        print(f"{language:8s} {len(words):7d} words, {len(unique):7d} in no other list", file=sys.stderr)
    (HERE / "data").mkdir(exist_ok=True)
    for split, split_rows in rows.items():
        order = rng.permutation(len(split_rows))  # languages interleaved, not in blocks
        with (HERE / "data" / f"{split}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["word", "language"])
            writer.writerows(split_rows[i] for i in order)
        print(f"wrote data/{split}.csv: {len(split_rows)} words", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
