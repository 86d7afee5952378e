"""Distributed-training tests need torch; each starts seeded, on one thread (the
workers they start get `OMP_NUM_THREADS=1`: two of them share a busy two-core machine)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _seeded_single_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)
