"""Raw text for next-token models (spec version 2): a corpus as the samples of a graph.

A next-token model has one input of token ids, and each of its outputs feeds that
input back (`feedback: text`): its data is the text alone. `data.text` reads a `.txt`
file as one stream of tokens, or the rows of a `.csv` / `.jsonl` (the `data.text.column`
of each, no label) as one sample each. The output at step t predicts token t+1, so a
sample's input is its tokens but the last and its targets the same tokens shifted by
one. A `.txt` stream of n tokens has n - 1 such steps, cut in order into samples of
`max_length` steps (the last one shorter, with its length): every token is read and
every next token predicted exactly once, and nothing is dropped. A row is cut to
`max_length` + 1 tokens, as v1 cuts a row to `max_length`. `validation_split` takes
the last fraction of a `.txt`'s text (cut at a space or line break), or of the rows.
The vocabulary (`rnnc.text.Vocab`) is built from the training text alone, so validation
and test text meet unknown tokens as new text will; the embedding's `vocab_size` and
the output's units must hold its ids (a `SpecError` at those settings, naming the size
they need). Needs numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import ir
from .data_text import read_rows, read_splits
from .dataset import TrainingData, check_readable, split_at
from .errors import DataError, JsonPath, Problem, SpecError, format_path
from .graph_data import GraphDataset, graph_dataset
from .loader import Document
from .metadata import lengths_rules
from .next_token import CORPUS_SUFFIXES, next_token_input
from .text import FIRST_ID, UNKNOWN, Vocab, tokenize


@dataclass(frozen=True)
class Corpus:
    """The texts of one file: a `.txt` is one text (`stream`), a table one per row."""

    origin: str
    texts: list[str]
    stream: bool

    def split(self, fraction: float) -> tuple[Corpus, Corpus]:
        """(first part, last `fraction`), no shuffling: rows as `validation_split` cuts
        samples; a stream's text at the first space or line break past the cut."""
        last = f"{self.origin} (last {fraction:g})"
        if not self.stream:
            at = split_at(len(self.texts), fraction, self.origin)
            return Corpus(self.origin, self.texts[:at], False), Corpus(last, self.texts[at:], False)
        text = self.texts[0]
        at = split_at(len(text), fraction, self.origin)
        space = next((i for i in range(at, len(text)) if text[i].isspace()), at)
        first, rest = text[:space], text[space:]
        if not first.strip() or not rest.strip():
            raise DataError(f"{self.origin}: validation_split {fraction} leaves no {'training' if not first.strip() else 'validation'} text")
        return Corpus(self.origin, [first], True), Corpus(last, [rest], True)


def read_corpus(path: str | Path, settings: ir.TextData) -> Corpus:
    """The text of a `.txt` file (UTF-8, not blank), or the text of every row of a
    `.csv` / `.jsonl` (`data.text.column`; a label column is not read)."""
    path = Path(path)
    check_readable(path)
    if path.suffix not in CORPUS_SUFFIXES:
        raise DataError(f"{path}: a next-token model reads raw text from {', '.join(CORPUS_SUFFIXES)} files, got '{path.suffix}'")
    if path.suffix != ".txt":
        return Corpus(str(path), read_rows(path, settings, labelled=False).texts, False)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None
    if not text.strip():
        raise DataError(f"{path}: holds no text")
    return Corpus(str(path), [text], True)


# --- the vocabulary against the model --------------------------------------------------


def vocab_misfits(model: ir.Model, vocab: Vocab, origin: str) -> list[tuple[JsonPath, str]]:
    """(spec setting, message) for each embedding that reads the text and each output
    that predicts it, where the ids of `vocab` (built from the training file `origin`)
    do not fit."""
    name = next_token_input(model)
    what = (f"{origin}: the training text has {len(vocab.tokens)} distinct {vocab.tokenizer} tokens"
            + (f" (data.text.max_vocab keeps the {len(vocab.tokens)} most frequent)" if len(vocab.tokens) == _max_vocab(model) else "")
            + f", which with padding (0) and unknown (1) take {vocab.size} ids")
    found: list[tuple[JsonPath, str]] = []
    for node in model.nodes:
        if isinstance(node.layer, ir.Embedding) and node.sources[:1] == (name,) and node.layer.vocab_size < vocab.size:
            found.append((("layers", node.index, "vocab_size"),
                          f"{what}; vocab_size is {node.layer.vocab_size}: set vocab_size: {vocab.size}"))
    by_index = {n.index: n for n in model.nodes}
    for out in model.outputs:
        node = by_index[out.node]
        units = node.output_shape[-1]
        if isinstance(units, int) and units < vocab.size:
            where: JsonPath = ("layers", node.index, "units") if isinstance(node.layer, ir.Dense) else ("outputs", out.name)
            found.append((where, f"{what}; output '{out.name}' predicts {units}: set units: {vocab.size}"))
    return found


def _max_vocab(model: ir.Model) -> int:
    assert model.data.text is not None
    return model.data.text.max_vocab


def check_vocab(model: ir.Model, vocab: Vocab, origin: str) -> None:
    """A `SpecError` (placed in the spec by `rnnc train`) when the ids do not fit."""
    if misfits := vocab_misfits(model, vocab, origin):
        raise SpecError([Problem(model.name, None, None, format_path(where), message, where) for where, message in misfits])


# --- text to samples ---------------------------------------------------------------------


def encode_corpus(model: ir.Model, corpus: Corpus, vocab: Vocab) -> GraphDataset:
    """`corpus` as checked samples of the next-token graph `model`: the ids of its input,
    their lengths, and each output's targets (the ids one step on)."""
    name = next_token_input(model)
    settings = model.data.text
    assert name is not None and settings is not None
    index = {token: i + FIRST_ID for i, token in enumerate(vocab.tokens)}
    ids = lambda text: [index.get(t, UNKNOWN) for t in tokenize(text, vocab.tokenizer, vocab.lowercase)]  # noqa: E731
    steps = settings.max_length
    if corpus.stream:
        stream = ids(corpus.texts[0])
        if len(stream) < 2:
            raise DataError(f"{corpus.origin}: holds {len(stream)} token; a next-token model needs at least 2")
        pieces = [stream[start : start + steps + 1] for start in range(0, len(stream) - 1, steps)]
    else:
        pieces = [ids(text)[: steps + 1] for text in corpus.texts]
    inp = model.inputs[0]
    width = inp.shape[0] or max(1, max(len(p) - 1 for p in pieces))
    x = np.zeros((len(pieces), width), np.int64)
    y = np.zeros((len(pieces), width), np.int64)
    lengths = np.zeros(len(pieces), np.int64)
    for i, piece in enumerate(pieces):
        n = len(piece) - 1
        x[i, :n], y[i, :n], lengths[i] = piece[:-1], piece[1:], n
    arrays = {name: x, **{out.name: y for out in model.outputs}}
    if name in lengths_rules(model):
        arrays[inp.lengths_name] = lengths
    return graph_dataset(model, arrays, corpus.origin)


def load_corpus_data(model: ir.Model) -> TrainingData:
    """The spec's train, validation and test text, encoded with the vocabulary of the
    training text, all read and checked before any is used."""
    settings = model.data.text
    assert settings is not None
    train, validation, test = read_splits(model, lambda path: read_corpus(path, settings))
    vocab = Vocab.build(train.texts, settings)
    check_vocab(model, vocab, train.origin)
    encode = lambda corpus: None if corpus is None else encode_corpus(model, corpus, vocab)  # noqa: E731
    return TrainingData(encode(train), encode(validation), encode(test), vocab=vocab)  # type: ignore[arg-type]


def corpus_problems(model: ir.Model, doc: Document, path: Path, role: str, origin: str) -> list[Problem]:
    """What `rnnc check` finds in one text file of a next-token model: the file read
    whole (a DataError for the file itself) and, for the training text, whether the
    vocabulary it gives fits the model, each misfit at its spec setting."""
    assert model.data.text is not None
    corpus = read_corpus(path, model.data.text)
    if role != "train":
        return []
    if model.data.validation is None and model.training.validation_split > 0:
        corpus, _ = corpus.split(model.training.validation_split)
    vocab = Vocab.build(corpus.texts, model.data.text)
    return [doc.problem(where, message) for where, message in vocab_misfits(model, vocab, origin)]


def load_corpus_file(model: ir.Model, path: str | Path, vocab: Vocab) -> GraphDataset:
    """One text file encoded with a trained model's `vocab` (evaluation, held-out text)."""
    assert model.data.text is not None
    return encode_corpus(model, read_corpus(path, model.data.text), vocab)
