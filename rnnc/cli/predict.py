"""`rnnc predict MODEL.onnx|RUN_DIR INPUT [-o OUT]`: batch inference with onnxruntime, no torch.

The input is any data file `rnnc train` reads (a series or raw-text `.csv` as the
spec's `data` section says, `.jsonl`, `.npz`; see `predict_sources`) or `.npy`, `.txt`
and flattened `.csv` (`predict_io`). It runs through `rnnc.runtime` in batches of
`--batch-size` sequences, so memory stays bounded whatever the file's size; a progress
bar on stderr shows when there is more than one batch (on a terminal). The output
(`predict_output`) goes to OUT (`.csv`, or the raw arrays as `.npy` or `.npz`, written
atomically) or, without `-o`, to stdout as CSV: a header, one row per input row.
A bad model or input file ends with one line naming it, and exit status 2; when rows
went to stdout before it, the line says how many. A v2 graph (named inputs and
outputs) reads a `.npz` of one array per input (`predict_graph_io`) and writes one
array per output, or a table with every output's columns (`predict_graph_output`).
`--steps N` rolls a one-step series forecaster forward over its own forecasts
(`predict_rollout`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import IO, TYPE_CHECKING

from rnnc.cli.progress import add_progress_argument, shows_progress
from rnnc.errors import ArtifactError, DataError, RnncError, UsageError

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

    from rnnc import ir
    from rnnc.cli.predict_output import ArrayWriter, CsvWriter
    from rnnc.cli.predict_parquet import ParquetWriter
    from rnnc.cli.predict_sources import Input
    from rnnc.runtime import GraphPredictor, Predictor

OUTPUT_SUFFIXES = (".csv", ".npy", ".npz", ".parquet")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("predict", help="run an exported model.onnx on a data file (onnxruntime)")
    parser.add_argument("model", metavar="MODEL|RUN_DIR", help="model.onnx written by rnnc train or rnnc compile, or a run directory")
    parser.add_argument("input", metavar="INPUT", help="what rnnc train reads (.npz, .parquet, a directory of .npy or .parquet files; .csv and .jsonl as the spec says), .npy, .txt (raw text, one per line)")
    parser.add_argument("-o", "--output", metavar="OUT", help="write .csv, .npy, .npz or .parquet here (default: CSV on stdout)")
    parser.add_argument("--spec", metavar="SPEC", help="the spec the model was trained from (default: spec.yaml of the run, or beside the model)")
    parser.add_argument("--format", choices=("wide", "long"), default="wide",
                        help="CSV of a per-step output: one row per input (wide, default) or per real step (long)")
    parser.add_argument("--batch-size", type=int, default=256, metavar="N", help="sequences per run (default: 256)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="execution provider (cuda needs onnxruntime-gpu)")
    parser.add_argument("--threads", type=int, metavar="N", help="intra-op threads (default: physical cores, at most 8)")
    parser.add_argument("--beam", type=int, default=1, metavar="K",
                        help="decoding a sequence-to-sequence model (its feedback input absent): beam search of K (default 1: greedy)")
    parser.add_argument("--steps", type=int, metavar="N",
                        help="roll a one-step series forecaster forward N steps over its own forecasts: INPUT is the "
                             "history, then N rows with empty targets (predict_rollout)")
    parser.add_argument("--header", action=argparse.BooleanOptionalAction, help="CSV input: the first row is (or is not) a header (default: when no cell of it is a number)")
    add_progress_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rnnc.cli.evaluate import locate
    from rnnc.cli.predict_output import per_step, regression
    from rnnc.cli.predict_sources import needs_spec, open_source, read_spec
    from rnnc.runtime import GraphPredictor, load

    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    suffix = _output_suffix(args.output)
    if args.format == "long" and suffix != ".csv":
        raise UsageError(f"--format long is for CSV output; -o {args.output} keeps the raw arrays")
    model_path, spec_path = locate(args.model, args.spec, spec_optional=True)
    predictor = load(model_path, device=args.device, threads=args.threads)
    if args.steps is not None:
        from rnnc.cli import predict_rollout

        return predict_rollout.run(args, predictor, model_path, spec_path, suffix)
    from rnnc.cli.predict_decode import decodes, run_decoding

    if decodes(predictor, args.input, args.beam):  # a generative graph's questions alone (predict_decode)
        return run_decoding(args, predictor, model_path, suffix, _opened, _progress)
    if isinstance(predictor, GraphPredictor):
        return _run_graph(args, predictor, model_path, spec_path, suffix)
    sequences = per_step(predictor)
    if args.format == "long" and not sequences:
        raise UsageError(f"--format long is for per-step outputs; {model_path} gives one output per sequence")
    model, targets = None, None
    if spec_path.is_file() and (needs_spec(args.input, regression(predictor)) or (sequences and predictor.takes_lengths)):
        model, targets = read_spec(spec_path, args.input)
    given = _Given(args.input, str(model_path), str(spec_path) if model is not None else None, model)
    inp = open_source(args.input, predictor, model, header=args.header)
    count = inp.source.count
    with _progress(count, args.batch_size, shows_progress(args)) as bar, _opened(args.output, suffix) as handle:
        writer = _writer(suffix, handle, predictor, inp, targets, args.format == "long")
        try:
            for x, lengths in inp.source.batches(args.batch_size):
                y, lengths = given.run(predictor, x, lengths)
                writer.write(y, given.output_lengths(y, x, lengths) if suffix in (".csv", ".parquet") else lengths)
                bar.update(len(x))
            writer.finish()
        except RnncError as err:
            if args.output is None and writer.done:  # those rows are on the reader's screen or in its file
                from rnnc.cli.predict_output import partly_written

                raise partly_written(err, writer.done, count) from None
            raise
        finally:
            writer.close()
    return 0


def _run_graph(args: argparse.Namespace, predictor: GraphPredictor, model_path: Path, spec_path: Path, suffix: str) -> int:
    """A v2 graph's predictions: a `.npz` of named arrays in (`predict_graph_io`), one
    table or array per output out (`predict_graph_output`)."""
    from rnnc.cli.predict_graph_input import open_graph_input
    from rnnc.cli.predict_graph_output import GraphArrayWriter, GraphCsvWriter, OutputSteps, graph_columns
    from rnnc.cli.predict_parquet import ParquetWriter
    from rnnc.cli.predict_sources import SPEC_HINT
    from rnnc.runtime_graph import InputErrors

    names = ", ".join(predictor.outputs)
    if args.format == "long":
        raise UsageError(f"--format long is for a chain's per-step output; {model_path} is a graph, whose CSV has one row per sample")
    if suffix == ".npy" and len(predictor.outputs) != 1:
        raise UsageError(f"-o {args.output}: a .npy holds one array, and {model_path} has {len(predictor.outputs)} outputs "
                         f"({names}); write .npz or .csv")
    steps = OutputSteps(predictor)
    if suffix in (".csv", ".parquet") and steps.unknown:
        if not spec_path.is_file():
            unknown = predictor.outputs[steps.unknown[0]]
            raise UsageError(f"output '{unknown.name}' has {unknown.shape[1]} steps, which a convolution made of its input's; "
                             f"to cut each row at its real steps, {SPEC_HINT}")
        steps = OutputSteps(predictor, _graph_spec(spec_path, args.input, predictor, model_path))
    source = open_graph_input(args.input, predictor)
    count = source.count
    with _progress(count, args.batch_size, shows_progress(args)) as bar, _opened(args.output, suffix) as handle:
        writer: GraphCsvWriter | GraphArrayWriter | ParquetWriter
        if suffix == ".csv":
            writer = GraphCsvWriter(handle, graph_columns(predictor), count, str(model_path))
        elif suffix == ".parquet":  # one column per output, per-step ones cut at their real steps
            writer = ParquetWriter(handle, count, str(model_path))
        else:
            arrays = [*predictor.outputs, *((f"{n}_lengths" for n, i in predictor.inputs.items() if i.takes_lengths)
                                            if suffix == ".npz" else ())]
            writer = GraphArrayWriter(handle, arrays, count, str(model_path), npz=suffix == ".npz",
                                      folder=os.path.dirname(os.path.abspath(args.output)))
        try:
            begin = 0
            for inputs, lengths in source.batches(args.batch_size):
                try:
                    outputs, fed = predictor.run_with_lengths(inputs, lengths, start=begin)
                except DataError as err:
                    raise InputErrors([f"{args.input}: {line}" for line in err.lines()]) from None
                if isinstance(writer, GraphCsvWriter):
                    writer.write(outputs, steps.of(inputs, fed))
                elif isinstance(writer, ParquetWriter):
                    writer.write_columns(outputs, steps.of(inputs, fed))
                else:
                    writer.write({**outputs, **({f"{n}_lengths": v for n, v in fed.items()} if suffix == ".npz" else {})})
                begin += len(next(iter(inputs.values())))
                bar.update(len(next(iter(inputs.values()))))
            writer.finish()
        except RnncError as err:
            if args.output is None and writer.done:  # those rows are on the reader's screen or in its file
                from rnnc.cli.predict_output import partly_written

                raise partly_written(err, writer.done, count) from None
            raise
        finally:
            writer.close()
    return 0


def _graph_spec(spec_path: Path, input: str, predictor: GraphPredictor, model_path: Path) -> ir.Model:
    """The spec's IR, held to be the model's: the same inputs and outputs."""
    from rnnc.cli.predict_sources import read_spec

    model, _ = read_spec(spec_path, input)
    ours = ([i.name for i in model.inputs], [o.name for o in model.outputs]) if model.graph is not None else None
    if ours != (list(predictor.inputs), list(predictor.outputs)):
        said = f"inputs {', '.join(ours[0])} and outputs {', '.join(ours[1])}" if ours else "a chain (spec version 1)"
        raise UsageError(f"{spec_path}: not the spec of {model_path}: it describes {said}, the model inputs "
                         f"{', '.join(predictor.inputs)} and outputs {', '.join(predictor.outputs)}; pass its spec with --spec")
    return model


def _writer(suffix: str, handle: IO, predictor: Predictor, inp: Input, targets: tuple[str, ...] | None,
            long: bool) -> CsvWriter | ArrayWriter | ParquetWriter:
    from rnnc.cli.predict_output import ArrayWriter, CsvWriter, columns_for

    count, model = inp.source.count, predictor.path
    if suffix == ".parquet":
        from rnnc.cli.predict_parquet import ParquetWriter

        return ParquetWriter(handle, count, model)
    if suffix != ".csv":
        return ArrayWriter(handle, count, model, npz=suffix == ".npz", lengths=predictor.takes_lengths)
    keys = (inp.keys.names, inp.keys.rows) if inp.keys is not None else None
    return CsvWriter(handle, columns_for(predictor, targets), count, model, keys=keys, long=long)


class _Given:
    """What the command line named, for running a batch and saying what went wrong."""

    def __init__(self, input: str, model: str, spec: str | None, ir_model: ir.Model | None):
        self.input, self.model, self.spec, self.ir_model = input, model, spec, ir_model

    def run(self, predictor: Predictor, x: np.ndarray, lengths: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """(y, the lengths the model was fed, filled in where the input had none)."""
        try:
            x, lengths = predictor.checked(x, lengths)
            y = predictor.run(x, lengths)
        except DataError as err:
            hint = f" (is {self.model} the model of {self.spec}?)" if self.spec else ""
            raise DataError(f"{self.input}: {err}{hint}") from None
        if len(y) != len(x):
            raise ArtifactError(f"{self.model}: gave {len(y)} outputs for a batch of {len(x)} sequences")
        return y, lengths

    def output_lengths(self, y: np.ndarray, x: np.ndarray, lengths: np.ndarray | None) -> np.ndarray | None:
        """Real steps of each per-step output: the input's, unless a convolution changed
        the time axis, which only the spec can map."""
        if lengths is None or y.ndim != 3 or y.shape[1] == x.shape[1]:
            return lengths
        if self.ir_model is None:
            from rnnc.cli.predict_sources import SPEC_HINT

            raise DataError(f"{self.input}: the model's convolution changes the time axis; to tell each output's real steps, {SPEC_HINT}")
        from rnnc.data import output_steps

        steps = output_steps(self.ir_model, lengths)
        assert not isinstance(steps, int)
        return steps


def _output_suffix(output: str | None) -> str:
    if output is None:
        return ".csv"
    suffix = output[output.rfind(".") :].lower() if "." in output else ""
    if suffix not in OUTPUT_SUFFIXES:
        raise UsageError(f"-o {output}: unknown output format (use a name ending in {', '.join(OUTPUT_SUFFIXES)})")
    return suffix


@contextlib.contextmanager
def _opened(output: str | None, suffix: str):  # type: ignore[no-untyped-def]
    if output is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    from rnnc.artifacts import atomic_open

    with atomic_open(output, "w" if suffix == ".csv" else "wb") as handle:
        yield handle


class _NoBar:
    def update(self, n: int) -> None:
        pass


@contextlib.contextmanager
def _progress(total: int, batch_size: int, shown: bool):  # type: ignore[no-untyped-def]
    if not shown or total <= batch_size:
        yield _NoBar()
        return
    from tqdm import tqdm

    with tqdm(total=total, unit="seq", file=sys.stderr, desc="predict", dynamic_ncols=True) as bar:
        yield bar
