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
        from rnnc_torch.cpu.threads import set_to
    except ImportError:
        yield
        return
    with set_to(1):
        torch.manual_seed(0)
        yield
