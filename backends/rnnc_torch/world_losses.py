"""Masked losses of data-parallel workers as one process takes them: means over the
real steps of the global batch, not of each worker's share.

A masked objective (a sequence output with lengths, a shifted feedback target) is the
mean over a batch's real steps, and the workers' shares of a batch hold different
numbers of them, so the mean of their means is not the batch's mean. In training,
`WorldMean` all-reduces each step's count of real steps (one small collective per masked
output and step) and scales the share's sum by `world / count`: DDP's average of the
ranks' gradients is then the gradient of the global batch's mean, and the logged losses
are one process's (a `training.tbptt` chunk weighs in by that count too). In evaluation, `MaskedSums` keeps each batch's sum and count, and
`global_means` adds them up over the ranks once, per global batch, to the sample-weighted
mean of batch means that one process logs. Unmasked objectives pass through: equal local
batches of per-sample means already average to the global ones.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from .losses import Objective


class _Wrapped:
    """What the trainer asks of an objective besides calling it: the wrapped one's."""

    objective: Objective

    def __getattr__(self, name: str) -> Any:  # fast, fused, logits, probabilities, ...
        if name == "objective":  # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        return getattr(self.objective, name)


class WorldMean(_Wrapped):
    """`objective`, its masked mean over the real steps of every rank's rows (so every
    rank must call it alike: it all-reduces), times the world size for DDP's average."""

    def __init__(self, objective: Objective, size: int, device: torch.device):
        self.objective, self.size, self.device = objective, size, device
        self.count: Tensor | None = None  # the last call's real steps of all ranks

    def __call__(self, output: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        if mask is None:
            return self.objective(output, target)
        per_step = self.objective.elementwise(output, target)
        weights = mask.to(per_step.dtype)
        count = weights.detach().sum(dtype=torch.float64).reshape(1).to(self.device)
        dist.all_reduce(count)
        self.count = count  # what `DataParallel._real_steps` reads
        scale = (self.size / count.clamp(min=1.0)).to(per_step.device, per_step.dtype)
        return (per_step * weights).sum() * scale[0]


class MaskedSums(_Wrapped):
    """`objective` as it is, keeping each masked call's (sum, real steps) in `sums`."""

    def __init__(self, objective: Objective):
        self.objective = objective
        self.sums: list[Tensor] = []

    def __call__(self, output: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        if mask is None:
            return self.objective(output, target)
        per_step = self.objective.elementwise(output, target)
        weights = mask.to(per_step.dtype)
        self.sums.append(torch.stack([(per_step.double() * weights.double()).sum(), weights.double().sum()]))
        return (per_step * weights).sum() / weights.sum().clamp(min=1.0)


def global_means(sums: list[list[Tensor]], n: int, batch: int, device: torch.device) -> list[float]:
    """Each masked objective's mean over `n` samples in batches of `batch`, as one
    process takes it: every global batch's mean over its real steps, weighted by the
    batch's samples. `sums[i][k]` is this rank's (sum, count) of objective i in batch k
    (a rank whose share of the last batch is empty has one fewer). Collective."""
    batches = -(-n // batch)
    table = torch.zeros((len(sums), batches, 2), dtype=torch.float64)
    for i, kept in enumerate(sums):
        if kept:
            table[i, : len(kept)] = torch.stack(kept).cpu()
    table = table.to(device)
    dist.all_reduce(table)
    sizes = torch.full((batches,), float(batch), dtype=torch.float64, device=device)
    sizes[-1] = n - batch * (batches - 1)
    return ((table[..., 0] / table[..., 1].clamp(min=1.0) * sizes).sum(1) / n).tolist()
