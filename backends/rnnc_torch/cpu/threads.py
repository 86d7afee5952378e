"""How many intra-op threads a training step uses: torch's own count, except one thread
for models whose steps are tiny.

A recurrent step is a chain of small operations: torch runs elementwise work below
~32k elements on one thread whatever its setting, and a matrix product of under a
million FLOPs (a few microseconds on one core) gains nothing from being split, while
every parallel region costs a synchronisation of the thread pool. On a machine whose
cores are shared with other processes it is much worse: torch's OpenMP threads wait for
each other at every operation (bench/README.md: steps several times slower on two
threads than on one under load). Larger products do pay: on an idle 2-core machine
LSTM(64) at batch 32 (2e6 FLOPs per step) trains 1.5x faster on two threads than on
one. So the trainer lowers torch's thread count to one while it runs a model whose
largest per-step product is under `policy.SMALL_STEP_FLOPS` (`policy.training_threads`),
and puts the setting back afterwards (`at_most`); it never raises it. The rule depends only on the model and the batch size,
so a resumed run makes the same choice (thread counts can change float rounding).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

@contextlib.contextmanager
def set_to(threads: int | None) -> Iterator[None]:
    """torch's intra-op threads set to `threads` inside the block (None: unchanged)."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def at_most(threads: int | None) -> contextlib.AbstractContextManager[None]:
    """torch's intra-op threads lowered to `threads` inside the block, never raised
    (None: unchanged)."""
    return set_to(threads if threads is not None and threads < torch.get_num_threads() else None)
