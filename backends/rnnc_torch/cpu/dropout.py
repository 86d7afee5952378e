"""Dropout whose random stream can be chosen per thread.

A sharded training step (shards.py) runs a batch's shards on several threads. torch's
own dropout draws from the one global generator, in whatever order the threads reach
it, so the masks, and the trained weights, would change from run to run. `Dropout`
draws from the generator that `drawing_from` set for the calling thread; a thread
that set none draws from the global generator exactly as `nn.Dropout` does (the same
call, the same masks), which is every thread but a sharded step's.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_thread = threading.local()


@contextlib.contextmanager
def drawing_from(generator: torch.Generator) -> Iterator[None]:
    """Dropout in this thread draws from `generator` inside the block."""
    _thread.generator = generator
    try:
        yield
    finally:
        _thread.generator = None


class Dropout(nn.Module):
    """`nn.Dropout(p)`, drawing from this thread's generator where one is set."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        generator = getattr(_thread, "generator", None)
        if generator is None:
            return F.dropout(x, self.p, training=True)
        keep = torch.empty_like(x).bernoulli_(1.0 - self.p, generator=generator)
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"
