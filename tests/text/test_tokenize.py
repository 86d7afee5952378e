"""The tokenizers and the vocabulary of `data.text` (rnnc.text): numpy only."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rnnc import ir
from rnnc.errors import ArtifactError
from rnnc.text import PAD, UNKNOWN, Vocab, tokenize


@pytest.mark.parametrize(
    ("text", "tokenizer", "lowercase", "tokens"),
    [
        ("Hi you", "char", True, ["h", "i", " ", "y", "o", "u"]),
        ("  Hi  ", "char", False, ["H", "i"]),  # the text is stripped first
        ("Straße", "char", True, ["s", "t", "r", "a", "ß", "e"]),
        ("Hello, World!", "word", True, ["hello", ",", "world", "!"]),
        ("Hello, World!", "word", False, ["Hello", ",", "World", "!"]),
        ("it's 42nd", "word", True, ["it", "'", "s", "42nd"]),
        ("!!!", "word", True, ["!", "!", "!"]),  # a text that is not blank has tokens
        ("", "char", True, []),
        ("   ", "word", True, []),
    ],
)
def test_tokenize(text: str, tokenizer: str, lowercase: bool, tokens: list[str]) -> None:
    assert tokenize(text, tokenizer, lowercase) == tokens


def test_vocab_keeps_the_most_frequent_tokens_ties_alphabetically() -> None:
    vocab = Vocab.build(["b a b c", "c b d"], ir.TextData(tokenizer="word", max_vocab=3))
    assert vocab.tokens == ("b", "c", "a")  # b x3, c x2, then a before d (both x1)
    assert vocab.size == 5


def test_ids_start_at_two_unknown_is_one_and_length_is_cut() -> None:
    vocab = Vocab.build(["abc"], ir.TextData(tokenizer="char", max_length=4))
    assert PAD == 0 and UNKNOWN == 1
    assert vocab.ids("cabz") == [4, 2, 3, 1]
    assert vocab.ids("aaaaaa") == [2, 2, 2, 2]


def test_encode_pads_with_zero_at_the_end() -> None:
    vocab = Vocab.build(["ab"], ir.TextData(tokenizer="char"))
    ids, lengths = vocab.encode(["ab", "b", "abab"])
    assert ids.tolist() == [[2, 3, 0, 0], [3, 0, 0, 0], [2, 3, 2, 3]]
    assert lengths.tolist() == [2, 1, 4]
    ids, lengths = vocab.encode(["abab"], steps=3)  # a fixed input length cuts too
    assert ids.tolist() == [[2, 3, 2]] and lengths.tolist() == [3]
    assert ids.dtype == np.int64 and lengths.dtype == np.int64


def test_json_round_trip() -> None:
    vocab = Vocab.build(["Été à Köln"], ir.TextData(tokenizer="word", lowercase=False, max_length=7))
    again = Vocab.from_json(vocab.to_json(), "vocab.json")
    assert again == vocab
    assert again.ids("Köln x") == vocab.ids("Köln x")


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        json.dumps({"tokenizer": "bpe", "lowercase": True, "max_length": 5, "tokens": []}),
        json.dumps({"tokenizer": "char", "lowercase": True, "max_length": 0, "tokens": []}),
        json.dumps({"tokenizer": "char", "lowercase": True, "max_length": 5, "tokens": [1]}),
        json.dumps({"tokenizer": "char", "lowercase": True, "max_length": 5, "tokens": [], "unknown": 3}),
    ],
)
def test_a_bad_vocabulary_is_one_clear_error(text: str) -> None:
    with pytest.raises(ArtifactError, match=r"^model\.onnx: "):
        Vocab.from_json(text, "model.onnx")
