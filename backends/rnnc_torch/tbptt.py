"""Truncated backpropagation through time (`training.tbptt: K`) for a chain's batches.

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

from collections.abc import Callable

import torch
from torch import Tensor

from .recurrent import State

# One chunk's forward and backward: (begin, end, state) -> (output, loss, real steps, final state)
ChunkPass = Callable[[int, int, dict[int, State]], tuple[Tensor, Tensor, Tensor | float, dict[int, State]]]


class Chunks:
    """Where an epoch's batches are cut: `size` steps per chunk over `steps` steps, up
    to each batch's longest sequence when the data has `lengths` (in epoch order)."""

    def __init__(self, size: int, steps: int, lengths: Tensor | None):
        self.size = size
        self.steps = steps
        self.limits = None if lengths is None else lengths.cpu()  # one sync per epoch, not per batch

    def spans(self, start: int, stop: int) -> list[tuple[int, int]]:
        """The (begin, end) steps of each chunk of rows `start:stop` that holds a real step."""
        limit = self.steps if self.limits is None else int(self.limits[start:stop].max())
        return [(begin, min(begin + self.size, self.steps)) for begin in range(0, max(limit, 1), self.size)]


def chunk_lengths(lengths: Tensor | None, begin: int, end: int) -> Tensor | None:
    """Each sequence's real steps within steps `begin:end` (0 once it has ended)."""
    return None if lengths is None else (lengths - begin).clamp(0, end - begin)


def detached(state: dict[int, State]) -> dict[int, State]:
    """`state` cut from the graph that computed it: the next chunk's gradients stop here."""
    return {k: tuple(t.detach() for t in v) if isinstance(v, tuple) else v.detach() for k, v in state.items()}


def train_in_chunks(spans: list[tuple[int, int]], run: ChunkPass, step: Callable[[Tensor], None],
                    steps: int) -> tuple[Tensor, Tensor]:
    """Run each chunk (`run`: forward and backward) and `step` the optimizer after it.
    Returns the batch's output over all `steps` (zeros past the last chunk run, as past
    every sequence's end) and its loss over the real steps, both detached."""
    state: dict[int, State] = {}
    outputs: list[Tensor] = []
    total: Tensor | float = 0.0
    counted: Tensor | float = 0.0
    for begin, end in spans:
        output, loss, real, state = run(begin, end, state)
        step(loss)
        state = detached(state)
        outputs.append(output.detach())
        total = total + loss.detach().float() * real
        counted = counted + real
    output = torch.cat(outputs, dim=1)
    if output.shape[1] < steps:
        tail = output.new_zeros((output.shape[0], steps - output.shape[1], *output.shape[2:]))
        output = torch.cat([output, tail], dim=1)
    loss = total / counted if isinstance(counted, float) else total / counted.clamp(min=1)
    return output, torch.as_tensor(loss)
