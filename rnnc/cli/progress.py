"""`--no-progress`, shared by the commands that show a progress bar.

A bar is drawn only on a terminal: in a log file or a CI transcript its redraws are
noise (every refresh becomes text), so piped or redirected stderr gets the one-line
summaries alone, as with `--no-progress`.
"""

from __future__ import annotations

import argparse
import sys


def add_progress_argument(parser: argparse.ArgumentParser, help: str = "no progress bar") -> None:
    parser.add_argument("--no-progress", dest="progress", action="store_false", help=f"{help} (none is drawn unless stderr is a terminal)")


def on_terminal() -> bool:
    return sys.stderr.isatty()


def shows_progress(args: argparse.Namespace) -> bool:
    return bool(args.progress) and on_terminal()
