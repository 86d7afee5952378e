"""Hostile inputs to `rnnc predict`: one line naming the file, exit 2, nothing written.

Each case is a file an audit fed to `rnnc predict` (3,300 hostile inputs: 201
tracebacks, 89 exits 0 with the wrong number of rows): CSV headers that ate a row,
blank lines that shifted rows, BOMs, bytes that are not UTF-8, huge cells and ids,
unterminated quotes, NaN; damaged `.npy` headers and `.npz` archives (a bad CRC, an
encrypted or oddly compressed member, a header that claims 8 TiB). The good cases
check the rule the other way round: every input row is one output row, in order.
Models are exported with fresh weights (`predict_models`), so no torch is needed.
"""

from __future__ import annotations

import io
import os
import re
import struct
import threading
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rnnc_onnx")
from predict_models import STEPS, export_all  # noqa: E402

from rnnc.cli import main  # noqa: E402
from rnnc.cli import predict_io  # noqa: E402
from rnnc.cli.predict_io import open_input  # noqa: E402
from rnnc.errors import DataError  # noqa: E402
from rnnc.runtime import Predictor  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return export_all(tmp_path_factory.mktemp("models"))


def predict(capsys: pytest.CaptureFixture[str], model: Path, data: Path, *options: str) -> tuple[int, list[str], Path]:
    out = data.parent / "out.npy"
    capsys.readouterr()
    status = main(["predict", str(model), str(data), "-o", str(out), "--no-progress", *options])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and captured.out == ""
    return status, captured.err.splitlines(), out


def npy_bytes(x: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, x)
    return buffer.getvalue()


def npy_with_shape(shape: str, data: bytes = b"") -> bytes:
    """An .npy whose header claims `shape` (a Python literal), then `data`."""
    text = f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}"
    header = text.encode() + b" " * (63 - (len(text) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + data


def npz_bytes(compressed: bool = False, **arrays: object) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def zip_of(**members: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def central_patched(data: bytes, offset: int, value: int) -> bytes:
    """`data` (a zip) with a 16-bit field of its first central directory entry set."""
    at = data.index(b"PK\x01\x02") + offset
    return data[:at] + struct.pack("<H", value) + data[at + 2 :]


def flipped(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


X = np.random.default_rng(0).normal(size=(40, STEPS, 2)).astype(np.float32)
NAN_X = X.copy()
NAN_X[3, 1, 0] = np.nan
BIG_NPZ = npz_bytes(x=np.random.default_rng(1).normal(size=(3000, STEPS, 2)).astype(np.float32))
BIG_NPZ_Z = npz_bytes(compressed=True, x=np.random.default_rng(1).normal(size=(3000, STEPS, 2)).astype(np.float32))
ROWS = "".join(f"{i},{i + 1},{i + 2},{i + 3}\n" for i in range(51))

# (id, model, input file, its content, extra options, the one line's expected fragment)
BAD: list[tuple[str, str, str, bytes | str, tuple[str, ...], str]] = [
    # csv: the first row is a header only when no cell of it is a number
    ("csv_na_first_row", "variable", "x.csv", "n/a,1,2,3\n1,2,3,4\n", (), "x.csv:1: 'n/a' is not a number"),
    ("csv_no_header_option", "variable", "x.csv", "a,b\n1,2\n", ("--no-header",), "x.csv:1: 'a' is not a number"),
    ("csv_bom_in_a_cell", "variable", "x.csv", "1,2\n3,\ufeff4\n", (), r"x.csv:2: '\ufeff4' is not a number"),
    ("csv_not_utf8", "variable", "x.csv", b"1,2\n\xff\xfe,3\n", (), "x.csv: not a UTF-8 text file"),
    ("csv_utf16", "variable", "x.csv", "1,2,3,4\n".encode("utf-16"), (), "x.csv: not a UTF-8 text file"),
    ("csv_utf16_without_bom", "variable", "x.csv", "1,2,3,4\n".encode("utf-16-le"), (), r"x.csv:1: '1\x00' holds a NUL character"),
    ("csv_huge_cell", "variable", "x.csv", "1,2\n3," + "9" * 200_000 + "\n", (), "x.csv:2: a cell longer than 131,072 characters"),
    ("csv_id_beyond_int64", "ids", "x.csv", "1,2\n3,99999999999999999999\n", (), "x.csv:2: token id '99999999999999999999' is outside [0, 11]"),
    ("csv_id_outside_vocab", "ids", "x.csv", "1,2\n" * 300 + "3,12\n", (), "x.csv:301: token id '12' is outside [0, 11] (vocab_size 12)"),
    ("csv_unterminated_quote", "variable", "x.csv", '1,2\n3,"4\n' + ROWS, (), "x.csv:2: a quoted cell starts in this row and is never closed"),
    ("csv_stray_quote", "variable", "x.csv", '1,"2"3\n', (), "x.csv:1: not a CSV row"),
    ("csv_line_after_quoted_newline", "variable", "x.csv", '"1\n",2\n3,oops\n', (), "x.csv:3: 'oops' is not a number"),
    ("csv_multiline_cell_cut_short", "variable", "x.csv", '1,2\n3,"4\n' + "x" * 500 + '"\n', (), r"x.csv:2: '4\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...' is not"),
    ("csv_blank_line", "variable", "x.csv", "1,2\n\n3,4\n", (), "x.csv:2: blank line; every row is one sequence"),
    ("csv_blank_cells_line", "variable", "x.csv", "1,2\n , \n3,4\n", (), "x.csv:2: blank line"),
    ("csv_nan", "variable", "x.csv", "1,2\nnan,3\n", (), "x.csv:2: 'nan' is NaN, inf or beyond float32's range"),
    ("csv_inf", "variable", "x.csv", "1,2\n3,-inf\n", (), "x.csv:2: '-inf' is NaN"),
    ("csv_beyond_float32", "variable", "x.csv", "1,2\n3,1e39\n", (), "x.csv:2: '1e39' is NaN, inf or beyond float32's range"),
    ("csv_empty", "variable", "x.csv", "", (), "x.csv: no sequences"),
    # txt: one line, one text
    ("txt_blank_line", "text", "x.txt", "some words\n\nmore words\n", (), "x.txt:2: blank line; every line is one text"),
    ("txt_not_utf8", "text", "x.txt", b"some words\n\xff\n", (), "x.txt: not a UTF-8 text file"),
    ("txt_only_blank", "text", "x.txt", "\n \n", (), "x.txt: no text"),
    # npy: the header is checked against the file before anything is allocated
    ("npy_empty", "variable", "x.npy", b"", (), "x.npy: 'x' is not a numeric .npy array (EOF"),
    ("npy_unterminated_header", "variable", "x.npy", npy_with_shape("(3, 6, 2)")[:40], (), "x.npy: 'x' is not a numeric .npy array"),
    ("npy_negative_dimension", "variable", "x.npy", npy_with_shape("(-3, 6, 2)"), (), "x.npy: 'x' has a damaged header: its shape (-3, 6, 2)"),
    ("npy_boolean_dimension", "variable", "x.npy", npy_with_shape("(True, 6, 2)"), (), "x.npy: 'x' has a damaged header: its shape (True, 6, 2)"),
    ("npy_fraction_dimension", "variable", "x.npy", npy_with_shape("(1.5, 6, 2)"), (), "x.npy: 'x' is not a numeric .npy array"),
    ("npy_claims_8_tib", "variable", "x.npy", npy_with_shape("(1099511627776, 6, 2)", b"\0" * 48), (),
     "x.npy: 'x' has a damaged header or is truncated: its shape [1099511627776, 6, 2] needs 52,776,558,133,248 bytes of float32, the file holds 48"),
    ("npy_truncated", "variable", "x.npy", npy_bytes(X)[:-5], (), "x.npy: 'x' has a damaged header or is truncated"),
    ("npy_a_zip", "variable", "x.npy", npz_bytes(x=X), (), "x.npy: 'x' is not a .npy array (no .npy header)"),
    ("npy_nan", "variable", "x.npy", npy_bytes(NAN_X), (), "x.npy: x holds 1 NaN, inf or out-of-range values (first: NaN at x[3, 1, 0])"),
    ("npy_beyond_float32", "variable", "x.npy", npy_bytes(np.full((2, 3, 2), 1e300)), (), "(first: 1e+300, beyond float32 at x[0, 0, 0])"),
    ("npy_ids_outside_vocab", "ids", "x.npy", npy_bytes(np.full((2, 3), 40)), (), "x.npy: x holds 6 token ids outside [0, 11] (first: 40 at x[0, 0])"),
    # npz: damage is found before the first batch
    ("npz_bad_crc", "variable", "x.npz", flipped(BIG_NPZ, len(BIG_NPZ) // 2), (), "x.npz: 'x' is damaged (Bad CRC-32 for file 'x.npy')"),
    ("npz_bad_deflate", "variable", "x.npz", flipped(BIG_NPZ_Z, len(BIG_NPZ_Z) // 2), (), "x.npz: 'x' is damaged"),
    ("npz_encrypted", "variable", "x.npz", central_patched(npz_bytes(x=X), 8, 1), (), "x.npz: 'x' is encrypted"),
    ("npz_unknown_compression", "variable", "x.npz", central_patched(npz_bytes(x=X), 10, 99), (), "x.npz: 'x' uses zip compression method 99"),
    ("npz_member_not_npy_named", "variable", "x.npz", zip_of(x=npy_bytes(X)), (), "x.npz: member 'x' is not a .npy array"),
    ("npz_member_not_npy", "variable", "x.npz", zip_of(**{"x.npy": b"hello, not an array"}), (), "x.npz: 'x' is not a .npy array (no .npy header)"),
    ("npz_negative_rows", "variable", "x.npz", zip_of(**{"x.npy": npy_with_shape("(-3, 6, 2)")}), (), "x.npz: 'x' has a damaged header"),
    ("npz_claims_8_tib", "variable", "x.npz", zip_of(**{"x.npy": npy_with_shape("(1099511627776, 6, 2)")}), (), "x.npz: 'x' has a damaged header or is truncated"),
    ("npz_nan", "variable", "x.npz", npz_bytes(x=NAN_X), (), "x.npz: x holds 1 NaN, inf or out-of-range values (first: NaN at x[3, 1, 0])"),
    ("npz_lengths_outside", "variable", "x.npz", npz_bytes(x=X, lengths=np.full(40, 9)), (), "x.npz: lengths must lie in [1, 6] (the time axis of 'x'); lengths[0] is 9"),
    ("npz_lengths_count", "variable", "x.npz", npz_bytes(x=X, lengths=np.full(39, 2)), (), "x.npz: 'lengths' has shape [39] of int64; it needs 40 integers"),
    ("npz_truncated", "variable", "x.npz", npz_bytes(x=X)[:-60], (), "x.npz: not an .npz archive"),
    # found by the fuzzer (test_predict_fuzz.py)
    ("npy_tokenizer_error", "variable", "x.npy", npy_with_shape("(3, 6, 2,  "), (), "x.npy: 'x' is not a numeric .npy array"),
    ("npy_header_escape_warns", "variable", "x.npy", npy_with_shape("('\\o', 6, 2)"), (), "x.npy: 'x' is not a numeric .npy array (shape is not valid"),
    ("npz_leading_byte", "variable", "x.npz", b"\xff" + npz_bytes(x=X), (), "x.npz: not an .npz archive"),
    ("csv_no_tokens", "ids", "x.csv", "1,2\n0,0\n", (), "x.csv:2: the row has no tokens (every id is 0, the padding id of mask_zero)"),
    ("npy_no_tokens", "ids", "x.npy", npy_bytes(np.array([[1, 2], [0, 0]])), (), "x.npy: sequence 1 has no tokens"),
]


@pytest.mark.parametrize(("kind", "name", "content", "options", "fragment"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_a_bad_input_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], models: dict[str, Path],
    kind: str, name: str, content: bytes | str, options: tuple[str, ...], fragment: str,
) -> None:
    data = tmp_path / name
    data.write_bytes(content.encode() if isinstance(content, str) else content)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning would reach the user's stderr
        status, err, out = predict(capsys, models[kind], data, *options)
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith(f"{data}") and fragment in err[0], err
    assert len(err[0]) < 300, err  # an unterminated quote must not echo the rest of the file
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


# (id, model, input file, content, options, the rows the output must have)
GOOD: list[tuple[str, str, str, bytes | str, tuple[str, ...], int]] = [
    ("csv_all_text_header", "variable", "x.csv", "a,b,c,d\n1,2,3,4\n5,6,7,8\n", (), 2),
    ("csv_header_option", "variable", "x.csv", "1,2,3,4\n5,6,7,8\n", ("--header",), 1),
    ("csv_bom", "variable", "x.csv", "\ufeff1,2,3,4\n5,6,7,8\n", (), 2),
    ("csv_bom_before_header", "variable", "x.csv", "\ufeffa,b\n1,2\n", (), 1),
    ("csv_trailing_blank_lines", "variable", "x.csv", "1,2\n3,4\n\n\n", (), 2),
    ("csv_crlf", "variable", "x.csv", "1,2\r\n3,4\r\n", (), 2),
    ("csv_quoted_numbers", "variable", "x.csv", '"1","2"\n3,4\n', (), 2),
    ("txt_bare_cr_is_inside_a_text", "text", "x.txt", "ab\rcd\nef\n", (), 2),
    ("txt_crlf_bom_and_trailing_blank", "text", "x.txt", "\ufeffab\r\ncd\r\n\r\n", (), 2),
    ("npy_fortran_order", "variable", "x.npy", npy_bytes(np.asfortranarray(X)), (), 40),
    ("npz_compressed", "variable", "x.npz", BIG_NPZ_Z, (), 3000),
]


@pytest.mark.parametrize(("kind", "name", "content", "options", "rows"), [c[1:] for c in GOOD], ids=[c[0] for c in GOOD])
def test_every_input_row_is_one_output_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], models: dict[str, Path],
    kind: str, name: str, content: bytes | str, options: tuple[str, ...], rows: int,
) -> None:
    data = tmp_path / name
    data.write_bytes(content.encode() if isinstance(content, str) else content)
    status, err, out = predict(capsys, models[kind], data, *options)
    assert (status, err) == (0, [])
    assert len(np.load(out)) == rows


def test_a_bom_does_not_change_a_prediction(tmp_path: Path, capsys: pytest.CaptureFixture[str], models: dict[str, Path]) -> None:
    (tmp_path / "plain").mkdir()
    (tmp_path / "bom").mkdir()
    for folder, text in (("plain", "1,2,3,4\n"), ("bom", "\ufeff1,2,3,4\n")):
        (tmp_path / folder / "x.csv").write_text(text, encoding="utf-8")
        assert predict(capsys, models["variable"], tmp_path / folder / "x.csv")[0] == 0
    np.testing.assert_array_equal(np.load(tmp_path / "plain" / "out.npy"), np.load(tmp_path / "bom" / "out.npy"))


def test_a_csv_from_a_pipe_is_read_once(tmp_path: Path, capsys: pytest.CaptureFixture[str], models: dict[str, Path]) -> None:
    """A pipe gives its rows once: read twice, the run pass would see nothing (or hang)."""
    fifo = tmp_path / "x.csv"
    os.mkfifo(fifo)
    rows = "".join(f"{i},{i},{i},{i}\n" for i in range(300))
    writer = threading.Thread(target=lambda: fifo.write_text(rows))
    writer.start()
    status, err, out = predict(capsys, models["variable"], fifo, "--batch-size", "64")
    writer.join(timeout=10)
    assert (status, err) == (0, [])
    assert len(np.load(out)) == 300


@pytest.mark.parametrize("name", ["x.npy", "x.npz"])
def test_an_array_from_a_pipe_is_refused_without_opening_it(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            models: dict[str, Path], name: str) -> None:
    os.mkfifo(tmp_path / name)  # nobody writes: opening it would hang
    status, err, _ = predict(capsys, models["variable"], tmp_path / name)
    assert status == 2 and err == [f"{tmp_path / name}: not a regular file; .{name[2:]} input is read twice, so save it to a file first"]


@pytest.mark.parametrize(("after", "fragment"), [("1,2\n3,4\n", "it now ends at row 2 of 3"),
                                                 ("1,2\n3,4,5,6\n5,6\n", "x.csv:2: the file changed while it was read")])
def test_a_csv_that_changes_between_its_two_passes(tmp_path: Path, models: dict[str, Path], after: str, fragment: str) -> None:
    data = tmp_path / "x.csv"
    data.write_text("1,2\n3,4\n5,6\n")
    source = open_input(str(data), Predictor(models["variable"]))
    data.write_text(after)
    with pytest.raises(DataError, match=re.escape(fragment)):
        list(source.batches(256))


def test_one_huge_row_pads_only_its_own_batch(tmp_path: Path, models: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches are padded to their own longest row, and hold at most BATCH_VALUES values
    (here 1,000, for a small file); a model with a per-step output keeps one time axis
    for all batches (its .npy has one shape)."""
    monkeypatch.setattr(predict_io, "BATCH_VALUES", 1000)
    data = tmp_path / "x.csv"
    data.write_text("1,2\n" * 10 + ",".join(["1"] * 600) + "\n" + "1,2,3,4\n" * 10)
    shapes = [x.shape for x, _ in open_input(str(data), Predictor(models["variable"])).batches(4)]
    assert shapes == [(4, 1, 2), (4, 1, 2), (2, 1, 2), (1, 300, 2), (4, 2, 2), (4, 2, 2), (2, 2, 2)]
    per_step = [x.shape for x, _ in open_input(str(data), Predictor(models["per_step"])).batches(4)]
    assert per_step == [(1, 300, 2)] * 21


def test_huge_rows_give_the_same_predictions_as_one_by_one(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           models: dict[str, Path]) -> None:
    rng = np.random.default_rng(3)
    rows = [rng.normal(size=2 * n).round(3) for n in (1, 40, 3, 2, 40, 1)]
    (tmp_path / "x.csv").write_text("".join(",".join(map(str, r)) + "\n" for r in rows))
    assert predict(capsys, models["variable"], tmp_path / "x.csv", "--batch-size", "3")[0] == 0
    predictor = Predictor(models["variable"])
    alone = np.concatenate([predictor.run(r.reshape(1, -1, 2).astype(np.float32)) for r in rows])
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), alone, atol=1e-6)
