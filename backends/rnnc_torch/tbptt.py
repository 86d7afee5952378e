"""Truncated backpropagation through time (`training.tbptt: K`), for a chain's batches
and a graph's alike (each trainer says how to cut its batch and run one chunk).

A batch of sequences is cut along time into chunks of K steps (`Chunks.spans`); the
module runs chunk by chunk, each recurrent layer starting from the state the previous
chunk ended in, detached so gradients stop at the chunk's edge, and the optimizer
steps after each chunk (`train_in_chunks`), as PyTorch's word-language-model example
and Keras's stateful training do. Chunks past the batch's longest sequence are not
run: they hold no real step. A batch that fits in one chunk is an ordinary step, so
with K at least the data's length training is exactly as without tbptt. The batch's
loss, for the epoch's logs, is the mean of its chunks' losses weighted by their real
steps: the mean over the batch's real steps, as one pass would log it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from .recurrent import State

# One chunk's forward and backward: (begin, end, state) -> (outputs by name, the loss to
# step on, the parts logged, each part's real steps, the final state).
ChunkResult = tuple[dict[str, Tensor], Tensor, Sequence[Tensor], Sequence[Tensor | float], dict[Any, State]]
ChunkPass = Callable[[int, int, dict[Any, State]], ChunkResult]


class Chunks:
    """Where an epoch's batches are cut: `size` steps per chunk over `steps` steps, up
    to each batch's longest sequence when the data has `lengths` (in epoch order, cut
    into batches of `batch` rows). `agree` turns the batches' longest lengths into the
    ones every process uses: data-parallel workers must run as many chunks as each other."""

    def __init__(self, size: int, steps: int, lengths: Tensor | None, batch: int,
                 agree: Callable[[Tensor], Tensor] = lambda longest: longest):
        self.size = size
        self.steps = steps
        self.batch = batch
        self.limits = None
        if lengths is not None:
            rows = torch.nn.functional.pad(lengths, (0, -lengths.shape[0] % batch))
            self.limits = agree(rows.view(-1, batch).amax(1)).cpu()  # one sync per epoch, not per batch

    def spans(self, start: int, stop: int) -> list[tuple[int, int]]:
        """The (begin, end) steps of each chunk of rows `start:stop` (a batch) that holds a real step."""
        limit = self.steps if self.limits is None else int(self.limits[start // self.batch])
        return [(begin, min(begin + self.size, self.steps)) for begin in range(0, max(limit, 1), self.size)]


def chunk_lengths(lengths: Tensor | None, begin: int, end: int) -> Tensor | None:
    """Each sequence's real steps within steps `begin:end` (0 once it has ended)."""
    return None if lengths is None else (lengths - begin).clamp(0, end - begin)


def detached(state: dict[Any, State]) -> dict[Any, State]:
    """`state` cut from the graph that computed it: the next chunk's gradients stop here."""
    return {k: tuple(t.detach() for t in v) if isinstance(v, tuple) else v.detach() for k, v in state.items()}


def train_in_chunks(spans: list[tuple[int, int]], run: ChunkPass, step: Callable[[Tensor], None],
                    steps: int) -> tuple[dict[str, Tensor], list[Tensor]]:
    """Run each chunk (`run`: forward and backward) and `step` the optimizer after it.
    Returns the batch's outputs over all `steps` (zeros past the last chunk run, as past
    every sequence's end) and each logged part's mean over its real steps, detached."""
    state: dict[Any, State] = {}
    kept: dict[str, list[Tensor]] = {}
    totals: list[Tensor | float] = []
    counts: list[Tensor | float] = []
    for begin, end in spans:
        outputs, loss, parts, real, state = run(begin, end, state)
        step(loss)
        state = detached(state)
        for name, output in outputs.items():
            kept.setdefault(name, []).append(output.detach())
        if not totals:
            totals, counts = [0.0] * len(parts), [0.0] * len(parts)
        for i, (part, weight) in enumerate(zip(parts, real, strict=True)):
            totals[i] = totals[i] + part.detach().float() * weight
            counts[i] = counts[i] + weight
    means = [torch.as_tensor(t / (c if isinstance(c, float) else c.clamp(min=1))) for t, c in zip(totals, counts)]
    return {name: _padded(torch.cat(chunks, dim=1), steps) for name, chunks in kept.items()}, means


def _padded(output: Tensor, steps: int) -> Tensor:
    if output.shape[1] >= steps:
        return output
    return torch.cat([output, output.new_zeros((output.shape[0], steps - output.shape[1], *output.shape[2:]))], dim=1)
