"""A `Dataset` in memory as tensors on the training device, taken by batch (`rnnc_torch.trainer`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from rnnc import ir
from rnnc.dataset import Dataset, output_steps


@dataclass(frozen=True)
class DeviceData:
    """A `Dataset` as tensors on the training device; `mask` `[N, T]` marks the real
    output steps of a sequence-labelling model with lengths."""

    x: Tensor
    y: Tensor
    lengths: Tensor | None
    mask: Tensor | None

    @property
    def size(self) -> int:
        return int(self.x.shape[0])

    def take(self, order: Tensor) -> DeviceData:
        """The samples in `order` (a permutation), copied."""
        pick = lambda t: None if t is None else t[order]  # noqa: E731
        return DeviceData(self.x[order], self.y[order], pick(self.lengths), pick(self.mask))

    def rows(self, rows: slice) -> DeviceData:
        """A batch: views of `rows` of every tensor."""
        pick = lambda t: None if t is None else t[rows]  # noqa: E731
        return DeviceData(self.x[rows], self.y[rows], pick(self.lengths), pick(self.mask))

    def cut(self, steps: int, per_step: bool) -> DeviceData:
        """The inputs at `steps` steps (`at_width`), and the targets and mask when the
        model outputs a value `per_step`: a batch cut to its longest sequence."""
        if not per_step:
            return DeviceData(at_width(self.x, steps), self.y, self.lengths, self.mask)
        mask = None if self.mask is None else at_width(self.mask, steps)
        return DeviceData(at_width(self.x, steps), at_width(self.y, steps), self.lengths, mask)

    @classmethod
    def of(cls, model: ir.Model, data: Dataset, device: torch.device) -> DeviceData:
        lengths = mask = None
        if data.lengths is not None:
            lengths = torch.from_numpy(data.lengths).to(device)
            if model.sequence_output:
                out_lengths = torch.from_numpy(np.asarray(output_steps(model, data.lengths))).to(device)
                steps = output_steps(model, data.x.shape[1])
                mask = torch.arange(steps, device=device)[None, :] < out_lengths[:, None]
        return cls(torch.from_numpy(data.x).to(device), torch.from_numpy(data.y).to(device), lengths, mask)


def at_width(tensor: Tensor, steps: int) -> Tensor:
    """`tensor`'s first `steps` steps (a view), or, when it has fewer (a data-parallel
    rank's batch read from disk, cut at its own longest sequence, where the ranks agree
    on a longer one), padded with zeros (False) to `steps`: steps past every length."""
    have = int(tensor.shape[1])
    if have >= steps:
        return tensor[:, :steps]
    out = tensor.new_zeros((tensor.shape[0], steps, *tensor.shape[2:]))
    out[:, :have] = tensor
    return out
