"""Raw text as token ids: the tokenizers and the vocabulary behind `data.text`.

A `Vocab` is built from the training texts alone (the most frequent `max_vocab`
tokens, ties broken alphabetically, so the same texts always give the same ids) and
then encodes any text the same way, at training and at prediction time: id 0 pads,
id 1 stands for a token the vocabulary lacks, known tokens start at 2. It travels as
JSON, in the run directory (`vocab.json`) and in the exported model's metadata (key
`rnnc.vocab`), so `rnnc predict` tokenises raw text with numpy and the standard
library only. The `char` tokenizer keeps every character (spaces included) of the
stripped text; `word` splits into runs of letters and digits and single punctuation
marks, so a text that is not blank always has at least one token.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from . import ir
from .errors import ArtifactError

PAD, UNKNOWN = 0, 1
FIRST_ID = 2  # the first id of a real token
METADATA_KEY = "rnnc.vocab"
VOCAB_FILE = "vocab.json"  # a raw-text run's vocabulary, beside its weights
TOKENIZERS = ("char", "word")
_WORD = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str, tokenizer: str, lowercase: bool) -> list[str]:
    """The tokens of `text`, uncut."""
    text = text.strip()
    if lowercase:
        text = text.lower()
    if tokenizer == "char":
        return list(text)
    if tokenizer == "word":
        return _WORD.findall(text)
    raise ValueError(f"unknown tokenizer {tokenizer!r}")


@dataclass(frozen=True)
class Vocab:
    """Tokens in id order (`tokens[i]` has id `i + 2`) and how texts are tokenised."""

    tokens: tuple[str, ...]
    tokenizer: str = "char"
    lowercase: bool = True
    max_length: int = 100

    @classmethod
    def build(cls, texts: Iterable[str], settings: ir.TextData) -> Vocab:
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(tokenize(text, settings.tokenizer, settings.lowercase))
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[: settings.max_vocab]
        return cls(tuple(token for token, _ in ranked), settings.tokenizer, settings.lowercase, settings.max_length)

    @property
    def size(self) -> int:
        """Ids in use: padding, unknown and the tokens."""
        return len(self.tokens) + FIRST_ID

    def ids(self, text: str) -> list[int]:
        """The ids of `text`, cut to `max_length`."""
        index = self._index
        tokens = tokenize(text, self.tokenizer, self.lowercase)[: self.max_length]
        return [index.get(token, UNKNOWN) for token in tokens]

    def encode(self, texts: Sequence[str], steps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(ids int64 `[N, T]` padded with 0 at the end, lengths int64 `[N]`); `T` is
        `steps` when given, else the longest text's length (at least 1)."""
        rows = [self.ids(text) for text in texts]
        lengths = np.array([len(row) for row in rows], dtype=np.int64)
        width = steps if steps is not None else max(1, int(lengths.max(initial=0)))
        ids = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row[:width]
        return ids, np.minimum(lengths, width)

    @cached_property
    def _index(self) -> dict[str, int]:
        return {token: i + FIRST_ID for i, token in enumerate(self.tokens)}

    # --- JSON, for vocab.json and the model's metadata --------------------------------

    def to_json(self) -> str:
        return json.dumps(
            {"tokenizer": self.tokenizer, "lowercase": self.lowercase, "max_length": self.max_length,
             "pad": PAD, "unknown": UNKNOWN, "tokens": list(self.tokens)},
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str, origin: str) -> Vocab:
        """The vocabulary in `text`; an `ArtifactError` naming `origin` when it is not one."""
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError as err:
            raise ArtifactError(f"{origin}: the vocabulary is not valid JSON ({err.msg})") from None
        ok = (
            isinstance(data, dict)
            and data.get("tokenizer") in TOKENIZERS
            and isinstance(data.get("lowercase"), bool)
            and isinstance(data.get("max_length"), int) and data["max_length"] >= 1
            and isinstance(data.get("tokens"), list) and all(isinstance(t, str) for t in data["tokens"])
            and data.get("pad", PAD) == PAD and data.get("unknown", UNKNOWN) == UNKNOWN
        )
        if not ok:
            raise ArtifactError(
                f"{origin}: not an rnnc vocabulary (expected tokenizer char|word, lowercase, max_length, tokens)"
            )
        return cls(tuple(data["tokens"]), data["tokenizer"], data["lowercase"], data["max_length"])
