"""Loading specs over and over (a server, a tuner, the fuzzer) holds no memory for them.

PyYAML's constructor remembers every node it has built; the loader once shared one
constructor between all documents, and kept 18 KB per seed spec loaded, for the life
of the process. A spec loaded 2,000 times must now leave the traced memory where it was.
"""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

from rnnc.loader import load_text

# not `from conftest import ROOT`: which conftest that names depends on the order pytest collects in
ROOT = Path(__file__).resolve().parents[2]
SEED = (ROOT / "specs" / "seed_binary.yaml").read_text(encoding="utf-8")

LOADS = 2_000
BOUND = 64 * 1024  # bytes; the shared constructor kept 36.8 MB over these loads of the seed spec


def test_loading_a_spec_two_thousand_times_keeps_no_memory() -> None:
    for _ in range(20):  # caches that fill once (the YAML resolver's, the interpreter's) fill here
        load_text(SEED, "seed.yaml")
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(LOADS):
            load_text(SEED, "seed.yaml")
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < BOUND, f"{grown} bytes kept after {LOADS} loads"
