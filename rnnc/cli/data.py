"""`rnnc data convert IN -o OUT [--format npy|parquet]`: a data file in the layouts training reads from disk.

IN is a `.npz`, a `.jsonl` of numeric records (one JSON object of arrays per line),
a `.parquet` file or a directory of them, or a directory of `.npy` files; OUT a
directory of `.npy` files (memory-mapped by training) or one `.parquet` file (ragged:
a list per sequence). The format follows OUT's name (`.parquet`) unless `--format`
says. Memory stays bounded whatever the size (`rnnc.data_convert`); a progress bar on
stderr counts rows on a terminal; nothing is left at OUT when it fails. Bad input is
one line and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rnnc.cli.progress import add_progress_argument, shows_progress


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="data files: convert between .npz, .jsonl, .npy directories and Parquet")
    actions = parser.add_subparsers(dest="action", required=True, parser_class=type(parser))
    convert = actions.add_parser("convert", help="rewrite a data file as a directory of .npy files or as Parquet, in bounded memory")
    convert.add_argument("input", metavar="IN", help=".npz, .jsonl (numeric records), .parquet or a directory of them, a .npy directory")
    convert.add_argument("-o", "--output", metavar="OUT", required=True,
                         help="a new directory of .npy files, or a file ending in .parquet")
    convert.add_argument("--format", choices=("npy", "parquet"), help="the layout of OUT (default: parquet when OUT ends in .parquet, else npy)")
    add_progress_argument(convert)
    convert.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rnnc.data_convert import convert, output_format

    out = Path(args.output)
    fmt = output_format(out, args.format)
    bar = None
    if shows_progress(args):
        from tqdm import tqdm

        bar = tqdm(unit="row", file=sys.stderr, desc="convert", dynamic_ncols=True)
    try:
        source = convert(Path(args.input), out, fmt, bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    arrays = ", ".join([*source.fields, *source.constants])
    print(f"{out}: {source.count} rows ({arrays}) as {'a directory of .npy files' if fmt == 'npy' else 'Parquet'}")
    return 0
