"""`rnnc check SPEC...`: validate specs, infer shapes, print a summary table per spec.

A graph's warnings (an input or layer that leads to no output) go to stderr as
`file:line:col: warning: ...` and leave the exit status 0.

Once a spec is valid, its data files are checked against it from their headers alone
(`rnnc.data_peek`): the spec's problems and then its data's, each at the setting it
contradicts, in a fraction of a second however large the files.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from rnnc.errors import RnncError, SpecError

if TYPE_CHECKING:
    from rnnc import ir


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("check", help="validate specs and their data files (headers only), print the layer summary")
    parser.add_argument("specs", nargs="+", metavar="SPEC", help="spec files (YAML)")
    add_overrides_argument(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    parser.set_defaults(run=run)


def add_overrides_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a spec setting, e.g. --set training.epochs=5 --set layers.0.units=64",
    )


def run(args: argparse.Namespace) -> int:
    from rnnc.spec import load_model
    from rnnc.summary import summary

    failed = printed = False
    for path in args.specs:
        try:
            model = load_model(path, args.overrides)
            for warning in model.graph.warnings if model.graph else ():  # a graph's unused inputs and layers
                print(warning, file=sys.stderr)
            check_data(model, path, args.overrides)
        except RnncError as err:
            failed = True
            for line in err.lines():
                print(line, file=sys.stderr)
            continue
        if not args.quiet:
            print(("\n" if printed else "") + summary(model, path))  # a blank line between tables
            printed = True
    return 2 if failed else 0


def check_data(model: ir.Model, path: str, overrides: list[str]) -> None:
    """Raise a `SpecError` of every problem the headers of the spec's data files show."""
    if not any((model.data.train, model.data.validation, model.data.test)):
        return
    from rnnc.data_peek import data_problems
    from rnnc.loader import load_file
    from rnnc.overrides import apply_overrides

    # the positions: load_model keeps its document to itself, and a spec reads in a millisecond
    if problems := data_problems(model, apply_overrides(load_file(path), overrides)):
        raise SpecError(problems)
