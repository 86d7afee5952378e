"""The autouse fixture both training and distributed tests use: each test starts from
the same global seed, on one torch thread.

One thread: these models are tiny, and on a busy two-core CI machine torch's thread
pool spinning against other processes makes them tens of times slower. The product
keeps torch's default; only the tests pin it (subprocesses via OMP_NUM_THREADS).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from rnnc_torch.cpu.threads import set_to


@pytest.fixture(autouse=True)
def _seeded_single_thread() -> Iterator[None]:
    with set_to(1):
        torch.manual_seed(0)
        yield
