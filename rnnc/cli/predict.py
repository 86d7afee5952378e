"""`rnnc predict MODEL.onnx INPUT [-o OUT]`: batch inference with onnxruntime, no torch.

The input (`.npz`, `.npy`, `.csv`, or `.txt` raw text for a model trained on text, see
`predict_io`) runs through `rnnc.runtime` in batches of `--batch-size` sequences, so
memory stays bounded whatever the file's size; a progress bar on stderr shows when
there is more than one batch (on a terminal). The output
goes to OUT (`.npy` or `.csv`, written atomically) or, without `-o`, to stdout as CSV;
for raw text the CSV names each text's predicted label and its probability.
A bad model or input file ends with one line naming it, and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from rnnc.cli.progress import add_progress_argument, shows_progress
from rnnc.errors import DataError, UsageError

OUTPUT_SUFFIXES = (".npy", ".csv")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("predict", help="run an exported model.onnx on a data file (onnxruntime)")
    parser.add_argument("model", metavar="MODEL", help="model.onnx written by rnnc train or rnnc compile")
    parser.add_argument("input", metavar="INPUT", help="sequences: .npz (x, optional lengths), .npy or .csv; raw text: .txt, one per line")
    parser.add_argument("-o", "--output", metavar="OUT", help="write .npy or .csv here (default: CSV on stdout)")
    parser.add_argument("--batch-size", type=int, default=256, metavar="N", help="sequences per run (default: 256)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="execution provider (cuda needs onnxruntime-gpu)")
    parser.add_argument("--threads", type=int, metavar="N", help="intra-op threads (default: physical cores, at most 8)")
    parser.add_argument("--header", action=argparse.BooleanOptionalAction, help="CSV input: the first row is (or is not) a header (default: when no cell of it is a number)")
    add_progress_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rnnc.cli.predict_io import open_input
    from rnnc.cli.predict_output import CsvWriter, LabelWriter, NpyWriter
    from rnnc.runtime import Predictor

    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    suffix = _output_suffix(args.output)
    predictor = Predictor(args.model, device=args.device, threads=args.threads)
    source = open_input(args.input, predictor, header=args.header)
    with _progress(source.count, args.batch_size, shows_progress(args)) as bar, _opened(args.output, suffix) as handle:
        if suffix == ".npy":
            writer = NpyWriter(handle, source.count)
        elif source.texts is not None:
            writer = LabelWriter(handle, source.texts, predictor)
        else:
            writer = CsvWriter(handle)
        for x, lengths in source.batches(args.batch_size):
            try:
                y = predictor.run(x, lengths)
            except DataError as err:
                raise DataError(f"{args.input}: {err}") from None
            writer.write(y)
            bar.update(len(x))
    return 0


def _output_suffix(output: str | None) -> str:
    if output is None:
        return ".csv"
    suffix = output[output.rfind(".") :].lower() if "." in output else ""
    if suffix not in OUTPUT_SUFFIXES:
        raise UsageError(f"-o {output}: unknown output format (use a name ending in {' or '.join(OUTPUT_SUFFIXES)})")
    return suffix


@contextlib.contextmanager
def _opened(output: str | None, suffix: str):  # type: ignore[no-untyped-def]
    if output is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    from rnnc.artifacts import atomic_open

    with atomic_open(output, "wb" if suffix == ".npy" else "w") as handle:
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
