"""Write data/train.txt, data/valid.txt and data/test.txt from the King James Bible.

The text comes from Debian's `bible-kjv-text` package (`apt-get install bible-kjv`
installs it with the `bible` program that prints it). The translation's copyright
expired long ago (see /usr/share/doc/bible-kjv-text/copyright); the package's program
is GPL, and none of it is copied here, only the text it prints. Each verse becomes one
line, its reference ("Ge1:1") stripped. Training reads four whole books; validation
and test are chapters of two other books, so every held-out line is text the model
never saw. The repository ships the files this writes; run it again to check them
(`--check`) or to rebuild them.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PARTS = {  # file -> the passages it holds, as `bible` reads them
    "train.txt": ["Genesis 1:1-50:26", "Exodus 1:1-40:38", "Matthew 1:1-28:20", "Mark 1:1-16:20"],
    "valid.txt": ["Luke 1:1-9:62"],
    "test.txt": ["John 1:1-11:57"],
}
_REFERENCE = re.compile(r"^\S+\d+:\d+ ")  # "Ge1:1 ", "Mat28:20 "


def verses(passage: str) -> list[str]:
    """The verses of `passage`, one line each, without their references."""
    if shutil.which("bible") is None:
        sys.exit("prepare.py: the `bible` program is missing: apt-get install bible-kjv")
    printed = subprocess.run(["bible", "-f", passage], capture_output=True, text=True, check=True).stdout
    lines = []
    for line in printed.splitlines():
        if not _REFERENCE.match(line):
            sys.exit(f"prepare.py: `bible -f {passage}` printed a line without a verse reference: {line[:60]!r}")
        lines.append(_REFERENCE.sub("", line).strip())
    return lines


def build() -> dict[str, str]:
    return {name: "\n".join(line for passage in passages for line in verses(passage)) + "\n" for name, passages in PARTS.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the shipped files instead of writing them")
    args = parser.parse_args()
    texts, data = build(), HERE / "data"
    if args.check:
        stale = [name for name, text in texts.items() if (data / name).read_text(encoding="utf-8") != text]
        print("the shipped files are up to date" if not stale else f"differ from the package's text: {', '.join(stale)}")
        return 1 if stale else 0
    data.mkdir(exist_ok=True)
    for name, text in texts.items():
        (data / name).write_text(text, encoding="utf-8")
        print(f"{data / name}: {len(text.encode()):,} bytes, {text.count(chr(10)):,} verses")
    return 0


if __name__ == "__main__":
    sys.exit(main())
