"""`rnnc init --task classification|forecasting|text [-o FILE] [--force]`: a starter spec.

Writes a commented spec for the task, which `rnnc check` accepts as written once its
data files exist (it names them, with their format, in comments: `data/train.npz`,
`data/train.csv` ...; the user brings the data). The first line points editors at the
JSON Schema of the installed rnnc (see docs/editors.md). An existing file is never
overwritten without `--force`.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from rnnc.errors import UsageError

TASKS = ("classification", "forecasting", "text")
DATA_NOTE = {
    "classification": "data/train.npz (x [N, 20, 3] numbers, y [N] class ids)",
    "forecasting": "data/train.csv and data/val.csv (a header, then one row per step, with a 'value' column)",
    "text": "data/train.csv (a header with columns 'text' and 'label', one text per row)",
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("init", help="write a commented starter spec for a task")
    parser.add_argument("--task", choices=TASKS, required=True, help="what the model does")
    parser.add_argument("-o", "--output", metavar="FILE", help="where to write it (default: <task>.yaml)")
    parser.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    parser.set_defaults(run=run)


def starter(task: str, spec_name: str) -> str:
    """The starter spec's text for `task`."""
    template = resources.files("rnnc").joinpath("starters", f"{task}.yaml").read_text(encoding="utf-8")
    schema = Path(str(resources.files("rnnc").joinpath("schema", "spec-v1.json")))
    return template.replace("{schema}", schema.as_uri()).replace("{spec}", spec_name)


def run(args: argparse.Namespace) -> int:
    output = Path(args.output or f"{args.task}.yaml")
    if output.exists() and not args.force:
        raise UsageError(f"{output}: exists; pass --force to overwrite it, or -o another file")
    if output.is_dir():
        raise UsageError(f"{output}: is a directory")
    from rnnc.artifacts import atomic_write_text

    atomic_write_text(output, starter(args.task, str(output)))
    print(f"wrote {output}; next: put your data in {DATA_NOTE[args.task]} beside it, then rnnc check {output}", file=sys.stderr)
    return 0
