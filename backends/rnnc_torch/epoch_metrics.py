"""The spec's metrics over an epoch, without keeping the epoch's outputs and targets.

The trainer hands over each batch's outputs, targets and mask as it goes; they wait
where they are (on the device: no host sync per step) until `FLUSH_VALUES` output
values are held, and are then made probabilities, moved to the host and folded into
`rnnc.metric_sums.MetricSums` (running counts; only `auc` keeps scores). Batches of
one width are folded together, so a flush costs a few numpy calls whatever the batch
size. `fold` may widen a chunk before it is counted: a data-parallel worker gathers
every rank's rows there, and every rank folds the same chunks, flushing at the same
step (the ranks hold the same number of values).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from rnnc import ir
from rnnc.metric_sums import MetricSums

FLUSH_VALUES = 1 << 22  # output values held before folding: 16 MiB of float32

Chunk = tuple[Tensor, Tensor, Tensor | None]  # (outputs, targets, mask) of consecutive batches of one width


class EpochMetrics:
    """`names` under `loss` over an epoch's batches; `probabilities` turns outputs
    (logits where the loss fuses them) into what the metrics read."""

    def __init__(self, names: Sequence[str], loss: ir.Loss, probabilities: Callable[[Tensor], Tensor],
                 fold: Callable[[Chunk], Chunk] | None = None) -> None:
        self.sums = MetricSums(names, loss)
        self.probabilities = probabilities
        self.fold = fold
        self.held: list[Chunk] = []
        self.values_held = 0

    def add(self, output: Tensor, target: Tensor, mask: Tensor | None = None) -> None:
        self.held.append((output.detach(), target, mask))
        self.values_held += output.numel()
        if self.values_held >= FLUSH_VALUES:
            self.flush()

    def flush(self) -> None:
        """Fold everything held into the sums."""
        start = 0
        while start < len(self.held):  # runs of batches whose time axis (if any) has one width
            shape = self.held[start][0].shape[1:]
            stop = start + 1
            while stop < len(self.held) and self.held[stop][0].shape[1:] == shape:
                stop += 1
            run = self.held[start:stop]
            masks = [m for _, _, m in run]
            chunk: Chunk = (torch.cat([o for o, _, _ in run]), torch.cat([t for _, t, _ in run]),
                            None if masks[0] is None else torch.cat(masks))  # type: ignore[arg-type]
            self._count(self.fold(chunk) if self.fold is not None else chunk)
            start = stop
        self.held, self.values_held = [], 0

    def _count(self, chunk: Chunk) -> None:
        outputs, targets, mask = chunk
        probs = self.probabilities(outputs.float()).cpu().numpy()
        self.sums.add(probs, targets.cpu().numpy(), None if mask is None else mask.cpu().numpy())

    def values(self) -> dict[str, float]:
        """`{name: value}` over every batch added."""
        self.flush()
        return self.sums.values()
