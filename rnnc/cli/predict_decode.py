"""`rnnc predict` on a sequence-to-sequence model's questions alone: decoding, not teacher forcing.

When a generative graph's `.npz` holds no array for the feedback input (the answer
the decoder reads), there is nothing to teacher-force: `rnnc predict` decodes each
question instead (`rnnc.runtime_decode`), greedy or `--beam K`, up to the spec's
max_length. It writes the feedback output's ids: `.npz` members `<O>` int64
`[N, max_length]` (the end id included where one was chosen, zero after) and
`<O>_lengths` int64 `[N]`; `.npy` the ids alone; Parquet a column `<O>`, each row
`list<int64>` the answer's first `<O>_lengths` ids; CSV one row per question, the answer
as text with a vocabulary, else its ids with spaces (the end id left out). With the
feedback input in the file, `rnnc predict` stays teacher-forced (`predict.py`).
"""

from __future__ import annotations

import argparse
import os
import zipfile
from typing import TYPE_CHECKING, Any

from rnnc.cli.predict_graph_input import open_graph_input
from rnnc.cli.predict_graph_io import GraphSource
from rnnc.errors import DataError, RnncError, UsageError

if TYPE_CHECKING:
    from pathlib import Path

    from rnnc.runtime_decode import Decoder
    from rnnc.runtime_graph import GraphPredictor


def feedback_input(predictor: Any) -> str | None:
    """The input a feedback output of `predictor` (a graph's, or a chain's: none) feeds."""
    for out in getattr(predictor, "outputs", {}).values():
        if out.feedback is not None and isinstance(out.feedback.get("input"), str):
            return str(out.feedback["input"])
    return None


def decodes(predictor: Any, path: str, beam: int) -> bool:
    """Whether `rnnc predict` decodes `path` with `predictor`: a generative model whose
    file lacks the feedback input. `--beam` anywhere else is an error."""
    name = feedback_input(predictor)
    inputs = getattr(predictor, "inputs", {})
    wanted = name is not None and name in inputs and len(inputs) > 1 and not _holds(path, name)
    if beam != 1 and not wanted:
        why = ("it has no feedback output" if name is None else
               f"{path} holds '{name}', so the answers are teacher-forced (leave '{name}' out to decode)")
        raise UsageError(f"--beam is for decoding a sequence-to-sequence model; {why}")
    return wanted


def _holds(path: str, name: str) -> bool:
    """Whether the `.npz` at `path` has an array `name` (a file that is no archive: no;
    reading it then says what is wrong)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return f"{name}.npy" in archive.namelist()
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


class _Questions:
    """A decoder's questions as `open_graph_input` reads a graph's inputs."""

    def __init__(self, decoder: Decoder):
        self.inputs, self.outputs, self.checked = decoder.questions, decoder.model.outputs, decoder.checked


def open_questions(path: str, decoder: Decoder) -> GraphSource:
    """The questions in the `.npz` at `path` (any feedback-input array passed over),
    checked whole before any is decoded."""
    name = decoder.plan.input
    return open_graph_input(path, _Questions(decoder), ignored=(name, f"{name}_lengths"))  # type: ignore[arg-type]


def run_decoding(args: argparse.Namespace, predictor: GraphPredictor, model_path: Path, suffix: str,
                 opened: Any, progress: Any) -> int:
    """Decode every question of `args.input` into `args.output` (`.csv` on stdout without
    one); `opened(output, suffix)` and `progress(count, batch, shown)` are predict's."""
    from rnnc.cli.predict_graph_output import DecodedCsvWriter, GraphArrayWriter
    from rnnc.cli.predict_parquet import ParquetWriter
    from rnnc.cli.progress import shows_progress
    from rnnc.runtime_decode import Decoder
    from rnnc.runtime_graph import InputErrors

    if args.beam < 1:
        raise UsageError(f"--beam must be at least 1, got {args.beam}")
    if args.format == "long":
        raise UsageError("--format long is for a chain's per-step output; a decoded answer is one cell per question")
    decoder = Decoder(model_path, opened=predictor)
    name = decoder.plan.output
    limit = decoder.limit(None)
    source = open_questions(args.input, decoder)
    count = source.count
    with progress(count, args.batch_size, shows_progress(args)) as bar, opened(args.output, suffix) as handle:
        writer: DecodedCsvWriter | GraphArrayWriter | ParquetWriter
        if suffix == ".csv":
            writer = DecodedCsvWriter(handle, name, decoder.text, count, str(model_path))
        elif suffix == ".parquet":  # each answer a list<int64> of its ids
            writer = ParquetWriter(handle, count, str(model_path))
        else:
            names = [name, f"{name}_lengths"] if suffix == ".npz" else [name]
            writer = GraphArrayWriter(handle, names, count, str(model_path), npz=suffix == ".npz",
                                      folder=os.path.dirname(os.path.abspath(args.output)))
        try:
            for inputs, lengths in source.batches(args.batch_size):
                rows = len(next(iter(inputs.values())))
                try:
                    decoded = decoder.decode(inputs, lengths, beam=args.beam, n=limit, batch_size=rows)
                except DataError as err:
                    raise InputErrors([f"{args.input}: {line}" for line in err.lines()]) from None
                if isinstance(writer, DecodedCsvWriter):
                    writer.write(decoded.ids, decoded.lengths)
                elif isinstance(writer, ParquetWriter):
                    writer.write_columns({name: decoded.ids}, {name: decoded.lengths})
                else:
                    writer.write({name: decoded.ids, f"{name}_lengths": decoded.lengths} if suffix == ".npz" else {name: decoded.ids})
                bar.update(rows)
            writer.finish()
        except RnncError as err:
            if args.output is None and writer.done:  # those rows are on the reader's screen or in its file
                from rnnc.cli.predict_output import partly_written

                raise partly_written(err, writer.done, count) from None
            raise
        finally:
            writer.close()
    return 0

