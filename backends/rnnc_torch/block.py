"""What every torch block is: the `Block` interface, and the helpers for lengths.

A block is one spec layer (or, for fused recurrent layers, several) as an `nn.Module`
whose `forward(x, lengths)` returns `(y, lengths)`: `lengths` is an int64 `[batch]`
tensor of real steps on `x`'s device, or None for full-length sequences. Each block
names its parameters as the IR does (`ir_parameters`) and knows its Keras-like
initialisation (`init_keras`). The blocks themselves are in `layers` and `recurrent`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def exporting() -> bool:
    """Whether `torch.export` is tracing this call (older torch, without the query, never
    exports an rnnc model: its .pt2 export needs torch's scan operator)."""
    query = getattr(torch.compiler, "is_exporting", None)
    return bool(query is not None and query())


def step_mask(lengths: Tensor, steps: int) -> Tensor:
    """`[batch, steps]` bool, True at real steps."""
    return torch.arange(steps, device=lengths.device) < lengths[:, None]


def zero_padding(x: Tensor, lengths: Tensor) -> Tensor:
    """`x` `[batch, time, ...]` with the steps past each sequence's length set to zero."""
    mask = step_mask(lengths, x.shape[1])
    return x.masked_fill(~mask.view(*mask.shape, *([1] * (x.dim() - 2))), 0.0)


def lengths_from_ids(ids: Tensor) -> Tensor:
    """`mask_zero`'s lengths: the position after the last non-zero id of each row."""
    positions = torch.arange(1, ids.shape[1] + 1, device=ids.device)
    return ((ids != 0) * positions).amax(dim=1) if ids.shape[1] else ids.new_zeros(ids.shape[0])


class Block(nn.Module):
    """One or more spec layers lowered to torch; see the module docstring."""

    def ir_parameters(self) -> dict[str, nn.Parameter]:
        """The block's parameters under their IR names (`layers.<i>.<param>`)."""
        return {}

    def init_keras(self) -> None:
        """Re-initialise the parameters the way Keras would (deterministic under a seed)."""

    def forward(self, x: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError
