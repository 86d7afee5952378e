"""The `rnnc` command: one module per subcommand, dispatched from here.

Each module in `COMMANDS` exposes `add_parser(subparsers)` and `run(args) -> int`.
Bad input (`RnncError`) is printed one problem per line on stderr and exits 2; a disk
too full to write an artifact (`DiskFullError`) prints one line and exits 1; the
subcommand modules are imported lazily so `rnnc check` never pays for torch. SIGTERM
and SIGHUP end a command through its cleanups (no temporary file left), exit 128 + signal.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
from collections.abc import Iterator, Sequence

from rnnc import __version__
from rnnc.errors import NO_ROOM, DiskFullError, RnncError

COMMANDS = ("check", "backends", "schema", "init", "train", "compile", "predict", "evaluate", "generate", "plot", "serve", "import", "data", "tune")
MODULES = {"import": "import_keras"}  # a subcommand whose name is a Python keyword
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
        module = importlib.import_module(f"rnnc.cli.{MODULES.get(name, name)}")
        module.add_parser(subparsers)
    return parser


@contextlib.contextmanager
def exit_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP end the command as `SystemExit(128 + signal)`, as a shell
    reports them, so cleanups run (`atomic_open` removes its temporary file) instead of
    the process dying mid-write; the previous handlers come back afterwards."""

    def leave(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    try:
        previous = {sig: signal.signal(sig, leave) for sig in (signal.SIGTERM, signal.SIGHUP)}
    except ValueError:  # not the main thread (an embedding program): its handlers stay as they are
        previous = {}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    with exit_on_signals():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
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
    except BrokenPipeError:  # `rnnc predict ... | head -1`: the reader left, which is fine
        _leave_quietly()
        return EXIT_OK
    except OSError as err:
        if err.errno not in NO_ROOM:
            raise
        # no room behind stdout (`rnnc predict ... > out.csv` on a full disk)
        print(f"rnnc {args.command}: cannot write the output: {err.strerror}", file=sys.stderr)
        _leave_quietly()  # its exit would flush the rest and fail again
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("rnnc: interrupted", file=sys.stderr)
        return 130


def _leave_quietly() -> None:
    """Point the real process's stdout at /dev/null, where nothing more can go: its
    exit-time flush would fail again and print 'Exception ignored ... BrokenPipeError'."""
    if sys.stdout is sys.__stdout__:
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
