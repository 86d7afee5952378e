"""Reliability tests: hostile input, crashes and full disks; training ones on one thread.

Tests that train pin torch to one thread and a fixed global seed, as `tests/train` does
(subprocesses get OMP_NUM_THREADS=1). Helpers come from `tests/train` (`tiny_models`,
`test_resume`), which pyproject's `pythonpath` puts on the import path.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _seeded_single_thread() -> Iterator[None]:
    try:
        import torch
    except ImportError:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)
