"""The `rnnc` command: one module per subcommand, dispatched from here.

Each module in `COMMANDS` exposes `add_parser(subparsers)` and `run(args) -> int`.
Bad input (`RnncError`) is printed one problem per line on stderr and exits 2; a disk
too full to write an artifact (`DiskFullError`) prints one line and exits 1; the
subcommand modules are imported lazily so `rnnc check` never pays for torch.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Sequence

from rnnc import __version__
from rnnc.errors import NO_ROOM, DiskFullError, RnncError

COMMANDS = ("check", "backends", "schema", "init", "train", "compile", "predict", "evaluate", "plot")
EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line exits 2 with one line (argparse's own status)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rnnc", description="Recurrent neural networks from a YAML spec.")
    parser.add_argument("--version", action="version", version=f"rnnc {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMANDS:
        module = importlib.import_module(f"rnnc.cli.{name}")
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except RnncError as err:
        for line in err.lines():
            print(line, file=sys.stderr)
        return EXIT_BAD_INPUT
    except DiskFullError as err:  # the input was fine; the machine ran out of room
        print(err, file=sys.stderr)
        return EXIT_FAILURE
    except OSError as err:
        if err.errno not in NO_ROOM:
            raise
        # no room behind stdout (`rnnc predict ... > out.csv` on a full disk)
        print(f"rnnc {args.command}: cannot write the output: {err.strerror}", file=sys.stderr)
        if sys.stdout is sys.__stdout__:  # the real process: its exit would flush the rest and fail again
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("rnnc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `rnnc schema | head`: the reader left, which is fine
        sys.stderr.close()
        return EXIT_OK
