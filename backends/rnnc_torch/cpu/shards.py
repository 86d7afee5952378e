"""Data parallelism inside one process: each training batch split across threads.

On a CPU torch parallelises each operation over its intra-op threads. A recurrent
layer is a long chain of small operations (per time step one product and a few
elementwise ones) that split badly: the threads meet at every operation, and on a
machine shared with other processes they wait for each other (bench/README.md). Split
the batch instead, and each thread runs a whole forward and backward pass over its own
rows with nothing to meet about until the gradients are summed. `ShardedStep` runs a
batch as K contiguous shards on K threads with torch's intra-op threads at one: torch
releases the GIL inside its kernels, and its CPU autograd runs a backward pass on the
thread that asks for it. Each shard's mean loss is scaled by its share of the rows,
so the shards' gradients sum to the batch's. They come from `torch.autograd.grad` and
are summed in shard order on the calling thread, so the result does not depend on
which thread finishes first: training stays deterministic for a given K (rounded
differently from the unsharded step, as a different thread count is).

Dropout stays deterministic too: before each step the calling thread draws one seed
per shard from torch's generator (so a checkpoint's RNG state still replays the run),
and each shard's dropout draws from its own generator (`dropout.drawing_from`).

`policy.shard_count` decides K (torch's intra-op thread count where sharding pays, else
1, the ordinary step), with the thresholds and the measurements behind them. Batches
with a loss mask (sequence outputs of variable length) take the ordinary step: their
mean is over real steps, not rows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor, nn

from .dropout import Dropout, drawing_from

Forward = Callable[[slice], tuple[Tensor, Tensor]]  # rows -> (output, mean loss)


@functools.cache
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, thread_name_prefix="rnnc-shard")


class ShardedStep:
    """Forward and backward passes of one batch as `shards` pieces on as many threads;
    call it inside `threads.at_most(1)` (each thread computes alone)."""

    def __init__(self, module: nn.Module, shards: int):
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.shards = shards
        self.random = any(isinstance(m, Dropout) for m in module.modules())

    def __call__(self, forward: Forward, start: int, stop: int) -> tuple[Tensor, Tensor]:
        """Runs `forward` on rows [start, stop) in shards and leaves the gradient of the
        batch's mean loss in each parameter's `.grad`; returns (output, mean loss)."""
        rows = stop - start
        k = min(self.shards, rows)  # an epoch's last batch may have fewer rows than threads: no empty shard
        cuts = [start + rows * i // k for i in range(k + 1)]
        seeds = torch.randint(0, 2**62, (k,)).tolist() if self.random else [None] * k
        parts = list(_pool(self.shards).map(self._shard, [forward] * k, cuts[:-1], cuts[1:], [rows] * k, seeds))
        for i, param in enumerate(self.params):
            grads = [part[2][i] for part in parts if part[2][i] is not None]
            param.grad = None if not grads else functools.reduce(torch.add, grads)
        output = torch.cat([part[0] for part in parts])
        loss = functools.reduce(torch.add, [part[1] for part in parts])
        return output, loss

    def _shard(
        self, forward: Forward, lo: int, hi: int, rows: int, seed: int | None
    ) -> tuple[Tensor, Tensor, tuple[Tensor | None, ...]]:
        if seed is None:
            output, loss = forward(slice(lo, hi))
        else:
            with drawing_from(torch.Generator().manual_seed(seed)):
                output, loss = forward(slice(lo, hi))
        share = loss * ((hi - lo) / rows)
        grads = torch.autograd.grad(share, self.params, allow_unused=True)
        return output.detach(), share.detach(), grads
