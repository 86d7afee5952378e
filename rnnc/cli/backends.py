"""`rnnc backends`: the backends installed through the `rnnc.backends` entry points."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("backends", help="list installed backends and what each can do")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rnnc.plugins import CAPABILITIES, discover

    found = discover()
    if not found:
        print("no backends installed")
        return 0
    width = max(len(f.name) for f in found)
    for f in found:
        if f.backend is None:
            print(f"{f.name.ljust(width)}  unavailable: {f.error}  ({f.value})")
        else:
            caps = " ".join(c for c in CAPABILITIES if c in f.backend.capabilities)
            print(f"{f.name.ljust(width)}  {caps.ljust(20)}  ({f.value})")
    return 0
