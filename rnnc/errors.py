"""The error types users see: one `Problem` per line, `FILE:LINE:COL: path: message`.

`SpecError` carries every problem found in a spec at once; `DataError` and
`ArtifactError` say what is wrong with a data, weights or model file. The CLI prints
them one per line and exits with status 2.
"""

from __future__ import annotations

import difflib
import errno
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

JsonPath = tuple[str | int, ...]


def format_path(path: JsonPath) -> str:
    """`('layers', 1, 'units')` -> `layers[1].units`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


@dataclass(frozen=True)
class Problem:
    """One thing wrong, and where: `origin` is a file name or an override like `--set a=b`.

    `path` is what the user reads; `json_path` is the same place for code (which section
    of the spec failed), empty where the problem is about the whole file.
    """

    origin: str
    line: int | None  # 1-based; None where the problem has no place in a file
    column: int | None
    path: str  # e.g. "layers[1].units", or "layers[2] (dense)"; "" for the whole file
    message: str
    json_path: JsonPath = ()

    @property
    def section(self) -> str:
        """The top-level key the problem is in (`layers`, `training`, ...); "" for the whole file."""
        return str(self.json_path[0]) if self.json_path else ""

    def __str__(self) -> str:
        where = self.origin
        if self.line is not None:
            where += f":{self.line}:{self.column}"
        text = f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"
        return one_line(text)


def one_line(text: str) -> str:
    """Escape control characters: a key or value quoted from a spec (`'a\\nb'`) must not
    break the one-line-per-problem output, nor hide text behind a bidi override."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class RnncError(Exception):
    """Bad input from the user; the CLI prints `lines()` and exits 2."""

    def lines(self) -> list[str]:
        return [str(self)]


class SpecError(RnncError):
    def __init__(self, problems: Sequence[Problem]):
        self.problems = sorted(problems, key=lambda p: (p.origin, p.line or 0, p.column or 0))
        super().__init__("\n".join(str(p) for p in self.problems))

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]


class DataError(RnncError):
    """Data that does not fit the spec: the message names the file."""


class ArtifactError(RnncError):
    """A weights, checkpoint or model file that cannot be used."""


class UsageError(RnncError):
    """A bad command line."""


class TrainingError(Exception):
    """Training failed while running (the loss diverged): the CLI exits 1, not 2."""


# A full disk, a file-size limit (RLIMIT_FSIZE) or a quota: no room, whatever the path.
NO_ROOM = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


class DiskFullError(Exception):
    """An artifact could not be written for lack of room (ENOSPC, EFBIG, EDQUOT). The
    input was fine and the previous file is intact, so it is a failure while running:
    the CLI prints the one line and exits 1, not 2."""


# What Keras and PyTorch call an rnnc name (folded: lowercase, no '_'), where spelling
# alone would not find it or would find the wrong one (difflib takes 'acc' for 'auc').
KNOWN_AS: dict[str, str] = {
    "learningrate": "lr", "acc": "accuracy", "f1score": "f1", "auroc": "auc", "rocauc": "auc",
    "meansquarederror": "mse", "meanabsoluteerror": "mae", "rootmeansquarederror": "rmse",
    "mseloss": "mse", "l1loss": "mae", "huberloss": "huber", "smoothl1loss": "huber",
    "bce": "binary_crossentropy", "bceloss": "binary_crossentropy",
    "crossentropy": "sparse_categorical_crossentropy",  # torch's takes class ids
    "crossentropyloss": "sparse_categorical_crossentropy",
    "rnn": "simple_rnn", "vanillarnn": "simple_rnn", "swish": "silu",
    "hiddensize": "units", "outfeatures": "units", "outchannels": "filters", "p": "rate",
    "inputdim": "vocab_size", "numembeddings": "vocab_size", "outputdim": "dim", "embeddingdim": "dim",
    "clipnorm": "gradient_clip", "clipgradnorm": "gradient_clip",
    "kernelinitializer": "initializer", "weightinit": "initializer",
}
# rnnc's own keys that are no misspelling of another (initial_state is not 'initializer').
NOT_TYPOS = frozenset({"initialstate"})


def _fold(word: str) -> str:
    return str(word).lower().replace("_", "")


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'units'?)`, or nothing when no choice is close.

    Case and separators are ignored in the comparison, so Keras's `SimpleRNN` and
    `LSTM` find `simple_rnn` and `lstm`; Keras's and PyTorch's own names for a setting
    (`learning_rate`, `acc`, `hidden_size`; also in a `val_` log key) find rnnc's.
    """
    choices = list(choices)
    folded = {_fold(c): c for c in choices}
    word = _fold(word)
    prefix, rest = ("val_", word[3:]) if word.startswith("val") else ("", word)
    for known in (KNOWN_AS.get(word), prefix + KNOWN_AS[rest] if rest in KNOWN_AS else None):
        if known in choices:
            return f" (did you mean '{known}'?)"
    if word in NOT_TYPOS:
        return ""
    close = difflib.get_close_matches(word, list(folded), n=1, cutoff=0.6)
    return f" (did you mean '{folded[close[0]]}'?)" if close else ""
