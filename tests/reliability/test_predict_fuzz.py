"""Fuzzing `rnnc predict`'s inputs: valid `.csv`, `.txt`, `.npy` and `.npz` files, mutated.

Hypothesis draws a valid input for one of the exported models of `predict_models`,
then damages it: bytes flipped, inserted (a BOM, CR, NUL, quotes, blank lines, huge
numbers, NaN, `n/a`) or cut off, an `.npy` header's shape rewritten, an `.npz`
member's zip flags or compression method changed. `rnnc predict -o out.npy` runs
in-process (`rnnc.cli.main`). Properties: the status is 0 or 2, never an exception;
on 2, stderr is one line naming the input file and nothing is left beside it; on 0,
stderr is empty and `out.npy` has one row per input sequence, counted independently
(numpy's own loader for arrays; physical lines for text). CI runs `CI_EXAMPLES`, the
same ones every time; `RNNC_FUZZ_EXAMPLES=N` scales them to N in all and
`RNNC_FUZZ_RANDOM=1` draws new ones (the long run in docs/reliability.md); with `-s`
the outcome counts are printed at the end.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import io
import os
import re
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("rnnc_onnx")
from predict_models import FEATURES, STEPS, VOCAB_SIZE, export_all  # noqa: E402

from rnnc.cli import main  # noqa: E402

SETTINGS = settings(
    deadline=None, derandomize=not os.environ.get("RNNC_FUZZ_RANDOM"), database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
CI_EXAMPLES = {"csv": 700, "txt": 300, "npy": 500, "npz": 500}
OUTCOMES: collections.Counter[str] = collections.Counter()


def examples(test: str) -> int:
    total = int(os.environ.get("RNNC_FUZZ_EXAMPLES") or 0)
    if not total:
        return CI_EXAMPLES[test]
    return max(1, round(CI_EXAMPLES[test] * total / sum(CI_EXAMPLES.values())))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    yield export_all(tmp_path_factory.mktemp("models"))
    if OUTCOMES:
        print("\npredict fuzz outcomes:", dict(sorted(OUTCOMES.items())))


# --- mutations --------------------------------------------------------------------------

TOKENS = ["\ufeff", "\r", "\0", '"', "'", "1e999", "nan", "-inf", "99999999999999999999", "1e39", "\n", "\n\n",
          "\r\n", ",", " ", "\t", "n/a", "-1", "0x10", "1_0", "é", "\u2028", "\x85", "9" * 140_000]
BYTES = [b"\xff", b"\xfe\xff", b"\x00" * 8, b"PK\x03\x04", b"\x93NUMPY"]


Case = tuple[str, bytes, list[str], int | None]  # model, input, options, its rows if undamaged


@st.composite
def mutated(draw: st.DrawFn, data: bytes, text: bool) -> bytes:
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(data)))
        what = draw(st.sampled_from(["insert", "flip", "cut", "delete"] if text else ["flip", "flip", "cut", "insert", "delete"]))
        if what == "insert":
            token = draw(st.sampled_from(TOKENS)).encode() if text else draw(st.sampled_from(BYTES))
            data = data[:at] + token + data[at:]
        elif what == "flip" and data:
            at = min(at, len(data) - 1)
            data = data[:at] + bytes([data[at] ^ (1 << draw(st.integers(0, 7)))]) + data[at + 1 :]
        elif what == "cut":
            data = data[:at]
        else:
            data = data[:at] + data[at + draw(st.integers(1, 20)) :]
    return data


def numbers(ids: bool, width: int) -> st.SearchStrategy[list[str]]:
    cell = st.integers(1, VOCAB_SIZE - 1).map(str) if ids else st.floats(-1e3, 1e3, width=32).map(lambda v: f"{v:.4g}")
    return st.lists(cell, min_size=width, max_size=width)


@st.composite
def csv_cases(draw: st.DrawFn) -> Case:
    kind = draw(st.sampled_from(["variable", "fixed", "ids"]))
    n = draw(st.integers(1, 12))
    step = 1 if kind == "ids" else FEATURES
    rows = [draw(numbers(kind == "ids", step * (STEPS if kind == "fixed" else draw(st.integers(1, 5))))) for _ in range(n)]
    header = draw(st.sampled_from([None, "text", "forced"]))
    lines = [",".join(r) for r in rows]
    options = ["--header"] if header == "forced" else []
    if header:
        lines.insert(0, ",".join(["a"] * len(rows[0])) if header == "text" else ",".join(["0"] * len(rows[0])))
    end = draw(st.sampled_from(["\n", "\r\n"]))
    valid = (end.join(lines) + end).encode()
    data = draw(mutated(valid, text=True))
    return kind, data, options, n if data == valid else None


@st.composite
def txt_cases(draw: st.DrawFn) -> Case:
    texts = draw(st.lists(st.text(st.characters(codec="utf-8", exclude_characters="\n\r"), min_size=1, max_size=30)
                          .filter(lambda t: t.strip()), min_size=1, max_size=8))
    valid = ("\n".join(texts) + "\n").encode()
    data = draw(mutated(valid, text=True))
    return "text", data, [], len(texts) if data == valid else None


@st.composite
def arrays(draw: st.DrawFn) -> tuple[str, dict[str, np.ndarray], int | None]:
    """(model, arrays, rows, or None when the values are damaged)."""
    kind = draw(st.sampled_from(["variable", "fixed", "ids", "per_step"]))
    n, steps = draw(st.integers(1, 20)), STEPS if kind == "fixed" else draw(st.integers(1, 8))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if kind == "ids":
        x = rng.integers(1, VOCAB_SIZE, size=(n, steps), dtype=draw(st.sampled_from([np.int64, np.int32, np.uint8])))
    else:
        x = rng.normal(size=(n, steps, FEATURES)).astype(draw(st.sampled_from([np.float32, np.float64, np.float16])))
        if draw(st.booleans()):
            with np.errstate(over="ignore"):  # 1e300 is inf in float16 and float32
                x.flat[draw(st.integers(0, x.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf, 1e300]))
    found = {"x": x}
    if kind != "fixed" and draw(st.booleans()):
        found["lengths"] = rng.integers(draw(st.integers(-1, 1)), steps + draw(st.integers(1, 2)), size=n + draw(st.sampled_from([0, 0, 0, -1, 1])))
    lengths = found.get("lengths", np.ones(n))
    wide = x.astype(np.float64)
    good = bool(np.isfinite(wide).all() and np.abs(wide).max() < 1e38)
    good = good and lengths.shape == (n,) and lengths.min() >= 1 and lengths.max() <= steps
    return kind, found, n if good else None


SHAPES = st.one_of(st.tuples(st.integers(-(2**62), 2**62), st.integers(-3, 10), st.integers(-3, 10)).map(str),
                   st.sampled_from(["(True, 6, 2)", "(2.5, 6, 2)", "()", "(3,)", "[3, 6, 2]", "(3, 6, 2", "'x'"]))


def rewrite_shape(draw: st.DrawFn, data: bytes) -> bytes:
    """The first `'shape': (...)` in `data` replaced by another literal, padded to keep its length."""
    match = re.search(rb"'shape': (\([^)]*\)), ", data)
    if not match:
        return data
    new = draw(SHAPES).encode()
    old = match.group(1)
    if len(new) > len(old) + match.end() - match.start() - 10:
        return data
    return data[: match.start(1)] + new + b", " + b" " * (len(old) - len(new)) + data[match.end() :]


@st.composite
def npy_cases(draw: st.DrawFn) -> Case:
    kind, found, n = draw(arrays())
    buffer = io.BytesIO()
    np.save(buffer, np.asfortranarray(found["x"]) if draw(st.booleans()) else found["x"])
    valid = data = buffer.getvalue()
    if draw(st.booleans()):
        data = rewrite_shape(draw, data)
    data = draw(mutated(data, text=False))
    return kind, data, [], n if data == valid and "lengths" not in found else None


@st.composite
def npz_cases(draw: st.DrawFn) -> Case:
    kind, found, n = draw(arrays())
    buffer = io.BytesIO()
    (np.savez_compressed if draw(st.booleans()) else np.savez)(buffer, **found)
    valid = data = buffer.getvalue()
    change = draw(st.sampled_from(["none", "shape", "flags", "method"]))
    if change == "shape":
        data = rewrite_shape(draw, data)
    elif change in ("flags", "method") and b"PK\x01\x02" in data:
        at = data.index(b"PK\x01\x02") + (8 if change == "flags" else 10)
        data = data[:at] + struct.pack("<H", draw(st.integers(0, 0xFFFF))) + data[at + 2 :]
    data = draw(mutated(data, text=False))
    return kind, data, [], n if data == valid else None


# --- the property -----------------------------------------------------------------------


def rows_in(path: Path, options: list[str]) -> int | None:
    """The sequences in `path`, counted without rnnc: numpy's loader, or physical lines
    (None when numpy cannot read an array that rnnc accepted)."""
    if path.suffix in (".npy", ".npz"):
        try:
            with contextlib.suppress(ValueError):  # numpy's loader may reject what rnnc accepted too
                loaded = np.load(path, allow_pickle=False)
                return len(loaded["x"] if path.suffix == ".npz" else loaded)
        except Exception:
            return None
        return None
    text = path.read_bytes().decode("utf-8-sig")
    if path.suffix == ".txt":
        return sum(1 for line in text.split("\n") if line.strip())
    rows = [r for r in csv.reader(io.StringIO(text, newline="")) if any(c.strip() for c in r)]
    if rows and ("--header" in options or not any(_number(c.strip()) for c in rows[0])):
        rows = rows[1:]
    return len(rows)


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def check_predict(models: dict[str, Path], suffix: str, case: Case) -> None:
    kind, data, options, rows = case
    with tempfile.TemporaryDirectory() as folder:
        path, out = Path(folder) / f"in{suffix}", Path(folder) / "out.npy"
        path.write_bytes(data)
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            status = main(["predict", str(models[kind]), str(path), "-o", str(out), "--no-progress", *options])
        lines = err.getvalue().splitlines()
        OUTCOMES[f"{suffix[1:]} exit {status}"] += 1
        assert status in (0, 2), (status, lines)
        assert rows is None or status == 0, lines  # an undamaged input runs
        if status == 2:
            assert len(lines) == 1 and lines[0].startswith(f"{path}"), lines
            assert sorted(os.listdir(folder)) == [path.name]
            return
        assert lines == []
        expected = rows_in(path, options) if rows is None else rows
        if len(np.load(out)) != expected:
            OUTCOMES["row mismatches"] += 1
        assert len(np.load(out)) == expected, (len(np.load(out)), expected)


@settings(SETTINGS, max_examples=examples("csv"))
@given(case=csv_cases())
def test_mutated_csv(models: dict[str, Path], case: Case) -> None:
    check_predict(models, ".csv", case)


@settings(SETTINGS, max_examples=examples("txt"))
@given(case=txt_cases())
def test_mutated_txt(models: dict[str, Path], case: Case) -> None:
    check_predict(models, ".txt", case)


@settings(SETTINGS, max_examples=examples("npy"))
@given(case=npy_cases())
def test_mutated_npy(models: dict[str, Path], case: Case) -> None:
    check_predict(models, ".npy", case)


@settings(SETTINGS, max_examples=examples("npz"))
@given(case=npz_cases())
def test_mutated_npz(models: dict[str, Path], case: Case) -> None:
    check_predict(models, ".npz", case)
