"""Whether rnnc's time loop trains a one-direction LSTM or GRU faster than torch's fused
kernel, measured on this machine.

The answer depends on the CPU more than on any threshold: LSTM(128) at batch 64 over
100 steps, forward and backward on one thread, took 56.0 ms in torch's kernel and 47.7
in the loop on an AVX2 EPYC, and 32.6 against 38.5 on an AVX-512 one, whose oneDNN
kernel is much faster; GRU(128) at batch 64 ran 37.3 against 31.7 on the same AVX-512
machine (bench/README.md, "What rnnc does for speed"). So above `policy`'s size
threshold (below it the loop's per-step overhead always loses) the first run on a
machine times both on the layer's size, keeps the loop only where it takes at most
`MARGIN` of the kernel's time (torch's kernel is the default), and writes the choice to
`$XDG_CACHE_HOME/rnnc/loop-<digest>.json` (choice_file.py, keyed like gemm.py's
choices by the CPU and the library versions), so that every later run on the machine
makes the same choice and training stays deterministic for a seed (the two round
differently).

What is timed: a layer of `units` with as many inputs (the input projection is one
product over every step either way), a forward and backward pass over `STEPS` (64,
fewer for big layers, so that a pass stays under `PASS_FLOPS`; the loop's fixed costs
around its steps weigh less over more of them) at the batch rounded up
to a power of two (the partial last batch of an epoch reuses its full batch's answer),
on the thread count the layer runs with, the median of `REPS` passes of each, taken
in turn. The weights and inputs come from a generator of their own, so a measurement
draws nothing from torch's global one. `RNNC_LOOP=loop` or `RNNC_LOOP=torch` forces
the answer (tests; a machine whose cache should not be written).
"""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import torch
from torch import nn

from . import choice_file, gemm
from .choice_file import ChoiceFile
from .stepwise import Workspace, run
from .threads import set_to

ENV = "RNNC_LOOP"
CHOICES = ("loop", "torch")
MARGIN = 0.9  # the loop must take at most this share of the kernel's time to be chosen
REPS = 5
STEPS = 64
PASS_FLOPS = 4e9  # forward and backward of one timed pass, at most (bar 2 steps)

_store = ChoiceFile("loop", CHOICES, gemm.machine)
_lock = threading.Lock()  # shard threads may ask at once: one measures, the rest wait for its answer


def setting() -> str:
    """`RNNC_LOOP`: auto (default), loop or torch; anything else is a usage error."""
    return choice_file.setting(ENV, CHOICES)


def loop_is_faster(mode: str, units: int, batch: int, threads: int) -> bool:
    """Whether rnnc's loop beats torch's kernel for a one-direction `mode` ("LSTM" or
    "GRU") layer of `units` at `batch` rows on `threads` intra-op threads, here."""
    forced = setting()
    if forced != "auto":
        return forced == "loop"
    rows = 1 << max(batch - 1, 0).bit_length()
    key = f"{mode} units={units} batch={rows} threads={threads}"
    choice = _store.get(key)
    if choice is None:
        with _lock:
            choice = _store.get(key)
            if choice is None:
                choice = _measure(mode, units, rows, threads)
                _store.remember(key, choice)
    return choice == "loop"


def forget() -> None:
    """Drop this process's choices (tests; the cache file is read again on the next question)."""
    _store.forget()


def cache_path() -> Path:
    """This machine's cache file of choices."""
    return _store.path()


def _measure(mode: str, units: int, rows: int, threads: int) -> str:
    gates = 4 if mode == "LSTM" else 3
    step_flops = 3 * 2 * rows * gates * units * (2 * units)  # forward + backward, input and recurrent products
    steps = max(2, min(STEPS, int(PASS_FLOPS // step_flops)))
    with torch.random.fork_rng(devices=[]), torch.enable_grad(), torch.autocast("cpu", enabled=False), set_to(threads):
        torch.manual_seed(0)
        rnn = (nn.LSTM if mode == "LSTM" else nn.GRU)(units, units, batch_first=True)
        x = torch.randn(rows, steps, units, requires_grad=True)
        workspace = Workspace()

        def kernel() -> None:
            out, _ = rnn(x)
            out[:, -1].sum().backward()

        def loop() -> None:
            run(rnn, x, None, False, workspace).sum().backward()

        times: dict[str, list[float]] = {"torch": [], "loop": []}
        for rep in range(REPS + 1):
            for name, go in (("torch", kernel), ("loop", loop)):
                start = time.perf_counter()
                go()
                if rep:  # the first of each warms caches and allocations
                    times[name].append(time.perf_counter() - start)
    return "loop" if statistics.median(times["loop"]) <= MARGIN * statistics.median(times["torch"]) else "torch"
