"""A `.npy` header, read without trusting it: one reader for `rnnc predict` and `rnnc check`.

numpy parses the header's dictionary as Python source, so a damaged one raises whatever
its tokenizer raises (`TokenError`, `SyntaxError`, `ValueError`) and may warn about an
escape sequence on stderr; here each becomes one `DataError` naming the file and the
array, and a shape that is not whole numbers >= 0 is refused before anything is sized
by it. What the header claims is only checked against the bytes that are really there
by the caller, who knows the file's size.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import IO

import numpy as np

from .errors import DataError


@dataclass(frozen=True)
class Header:
    """What a `.npy` header claims; `offset` is where its data starts."""

    shape: tuple[int, ...]
    fortran: bool
    dtype: np.dtype
    offset: int

    @property
    def row_bytes(self) -> int:
        return product(self.shape[1:]) * self.dtype.itemsize


def read_header(stream: IO[bytes], origin: str, name: str) -> Header:
    """The header at the stream's position, of the array `name` in the file `origin`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy parses a damaged header as Python source: it warns ('\\o')
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
            else:
                raise ValueError(f".npy format version {version[0]}.{version[1]} is not read here; save it with np.save")
        offset = stream.tell()
    except Exception as err:  # numpy's header parser raises whatever its tokenizer raises (TokenError, ...)
        if isinstance(err, ValueError) and "magic string is not correct" in str(err):
            raise DataError(f"{origin}: '{name}' is not a .npy array (no .npy header)") from None
        raise DataError(f"{origin}: '{name}' is not a numeric .npy array ({reason(err)})") from None
    if not isinstance(shape, tuple) or any(type(d) is not int or d < 0 for d in shape):
        raise DataError(f"{origin}: '{name}' has a damaged header: its shape {shape!r} is not whole numbers >= 0")
    return Header(shape, bool(fortran), dtype, offset)


def product(dims: tuple[int, ...]) -> int:
    """The number of values `dims` hold, in Python ints."""
    out = 1
    for d in dims:
        out *= d  # Python ints: a lying header cannot overflow the check
    return out


def reason(err: BaseException) -> str:
    """An exception's message on one line, at most 120 characters (the tokenizer's
    `('EOF in multi-line string', (1, 56))` without its position tuple)."""
    message = err.args[0] if len(err.args) == 2 and isinstance(err.args[0], str) and isinstance(err.args[1], tuple) else err
    text = " ".join(str(message).split()) or type(err).__name__
    return text if len(text) <= 120 else text[:117] + "..."
