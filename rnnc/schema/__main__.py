"""`python -m rnnc.schema --write | --check`: refresh the shipped spec-v1.json and
spec-v2.json from the definitions, or say (exit status 1) that one is stale."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from .generate import VERSIONS, schema_text, shipped_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rnnc.schema", description=__doc__)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="regenerate spec-v1.json and spec-v2.json")
    action.add_argument("--check", action="store_true", help="exit 1 when one of them is stale")
    args = parser.parse_args(argv)
    return max(_refresh(version, args.check) for version in VERSIONS)


def _refresh(version: int, check: bool) -> int:
    path, text = shipped_path(version), schema_text(version)
    current = path.read_text("utf-8") if path.exists() else ""
    if check:
        if current != text:
            print(f"{path} is stale: run python -m rnnc.schema --write", file=sys.stderr)
            return 1
        return 0
    if current != text:  # atomically, so an editor never reads half a schema
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, delete=False, suffix=".tmp") as tmp:
            tmp.write(text)
        os.replace(tmp.name, path)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
