"""`rnnc schema`: print the spec format's JSON Schema, for editors and other tools."""

from __future__ import annotations

import argparse
import json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("schema", help="print the JSON Schema of the spec format")
    parser.add_argument("--version", type=int, choices=(1, 2), default=1, dest="spec_version",
                        help="the spec format version: 1 (chains, default) or 2 (graphs)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rnnc.schema import load_schema

    print(json.dumps(load_schema(args.spec_version), indent=2))
    return 0
