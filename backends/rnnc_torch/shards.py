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

`shard_count` decides K: torch's intra-op thread count, where all of these hold (else
1, the ordinary step): a CPU device; fp32 (autocast state is per thread); no dropout
(threads drawing from one random stream would draw in a racing order); steps large
enough for threads to pay (`threads.training_threads` runs small ones on one thread);
at least `MIN_ROWS` rows per shard; at most `MAX_SHARDS` threads (measured on two cores
only; larger machines keep torch's own parallelism); and every recurrent layer run, at
a shard's size, by torch's fused kernel, one call per sequence that holds no GIL,
rather than by rnnc's own time loop (`stepwise.py`), whose many small operations per
step take the GIL between them: two threads of it contend (the bidirectional GRU text
workload trained 0.90x as fast sharded, the LSTM workload 1.61x). Batches with a loss
mask (sequence outputs of variable length) take the ordinary step: their mean is over
real steps, not rows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor, nn

from rnnc import ir

from . import stepwise
from .threads import training_threads

MIN_ROWS = 16  # a shard smaller than this spends its time on per-operation overhead
MAX_SHARDS = 4

Forward = Callable[[slice], tuple[Tensor, Tensor]]  # rows -> (output, mean loss)


def shard_count(model: ir.Model, device: torch.device) -> int:
    """How many threads each training batch is split across (1: not split)."""
    threads = torch.get_num_threads()
    if (
        device.type != "cpu"
        or model.training.precision != "fp32"
        or _has_dropout(model)
        or training_threads(model, device) is not None
        or not 2 <= threads <= MAX_SHARDS
        or model.training.batch_size < MIN_ROWS * threads
        or _runs_a_time_loop(model, model.training.batch_size // threads)
    ):
        return 1
    return threads


def _runs_a_time_loop(model: ir.Model, rows: int) -> bool:
    """Whether a recurrent layer of `model` would train in rnnc's Python time loop on
    batches of `rows` (stepwise.py) rather than in torch's kernel."""
    for node in model.nodes:
        match node.layer:
            case ir.SimpleRNN():
                return True
            case ir.LSTM(units=units, bidirectional=both) if stepwise.loop_pays("LSTM", both, units, rows):
                return True
            case ir.GRU(units=units, bidirectional=both) if stepwise.loop_pays("GRU", both, units, rows):
                return True
    return False


def _has_dropout(model: ir.Model) -> bool:
    for node in model.nodes:
        match node.layer:
            case ir.Dropout(rate=rate) if rate > 0:
                return True
            case ir.SimpleRNN(dropout=rate) | ir.LSTM(dropout=rate) | ir.GRU(dropout=rate) if rate > 0:
                return True
    return False


@functools.cache
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, thread_name_prefix="rnnc-shard")


class ShardedStep:
    """Forward and backward passes of one batch as `shards` pieces on as many threads;
    call it inside `threads.at_most(1)` (each thread computes alone)."""

    def __init__(self, module: nn.Module, shards: int):
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.shards = shards

    def __call__(self, forward: Forward, start: int, stop: int) -> tuple[Tensor, Tensor]:
        """Runs `forward` on rows [start, stop) in shards and leaves the gradient of the
        batch's mean loss in each parameter's `.grad`; returns (output, mean loss)."""
        rows = stop - start
        cuts = [start + rows * i // self.shards for i in range(self.shards + 1)]
        parts = list(_pool(self.shards).map(self._shard, [forward] * self.shards, cuts[:-1], cuts[1:], [rows] * self.shards))
        for i, param in enumerate(self.params):
            grads = [part[2][i] for part in parts if part[2][i] is not None]
            param.grad = None if not grads else functools.reduce(torch.add, grads)
        output = torch.cat([part[0] for part in parts])
        loss = functools.reduce(torch.add, [part[1] for part in parts])
        return output, loss

    def _shard(self, forward: Forward, lo: int, hi: int, rows: int) -> tuple[Tensor, Tensor, tuple[Tensor | None, ...]]:
        output, loss = forward(slice(lo, hi))
        share = loss * ((hi - lo) / rows)
        grads = torch.autograd.grad(share, self.params, allow_unused=True)
        return output.detach(), share.detach(), grads
