"""The spec's loss as a torch function of (model output, targets, step mask).

Keras's definitions: each loss is a mean over the output's last axis (or the class
axis), then over samples and, for sequence outputs, over the real steps only (padded
steps carry mask False and do not count). Probabilities are clipped to [1e-7, 1 - 1e-7]
before a log, as Keras does. When the model ends with sigmoid and the loss is binary
cross-entropy, or with softmax and a categorical cross-entropy, the trainer asks the
module for logits (`forward(..., logits=True)`) and the loss uses torch's log-sum-exp
forms instead: the same function, without the clipping and with stable gradients. With
`loss.from_logits` the model's own output is already a logit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import assert_never

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnc import ir

EPSILON = 1e-7  # Keras's backend epsilon, the clip on probabilities

_LOGIT_PAIRS = {
    "binary_crossentropy": "sigmoid",
    "categorical_crossentropy": "softmax",
    "sparse_categorical_crossentropy": "softmax",
}


@dataclass(frozen=True)
class Objective:
    """The loss to minimise. `logits`: whether it wants the module's logits (fused, or
    `from_logits`); `fused`: whether the trainer must call `forward(..., logits=True)`."""

    loss: ir.Loss
    logits: bool
    fused: bool

    def __call__(self, output: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        """The mean loss over the batch (and over the real steps where `mask` is given)."""
        per_step = self.elementwise(output, target)
        if mask is None:
            return per_step.mean()
        weights = mask.to(per_step.dtype)
        return (per_step * weights).sum() / weights.sum().clamp(min=1.0)

    def elementwise(self, output: Tensor, target: Tensor) -> Tensor:
        """Loss per sample `[B]`, or per sample and step `[B, T]` for sequence outputs."""
        kind = self.loss.type
        match kind:
            case "binary_crossentropy":
                if self.logits:
                    return F.binary_cross_entropy_with_logits(output, target, reduction="none").mean(-1)
                p = output.clamp(EPSILON, 1.0 - EPSILON)
                return -(target * torch.log(p) + (1.0 - target) * torch.log(1.0 - p)).mean(-1)
            case "categorical_crossentropy":
                if self.logits:
                    return -(target * F.log_softmax(output, dim=-1)).sum(-1)
                p = output / output.sum(-1, keepdim=True)  # Keras renormalises
                return -(target * torch.log(p.clamp(EPSILON, 1.0 - EPSILON))).sum(-1)
            case "sparse_categorical_crossentropy":
                log_p = F.log_softmax(output, dim=-1) if self.logits else torch.log(output.clamp(EPSILON, 1.0 - EPSILON))
                return -log_p.gather(-1, target.unsqueeze(-1)).squeeze(-1)
            case "mse":
                return (output - target).square().mean(-1)
            case "mae":
                return (output - target).abs().mean(-1)
            case "huber":
                return F.huber_loss(output, target, reduction="none", delta=self.loss.delta).mean(-1)
            case _:
                assert_never(kind)

    def fast(self) -> Callable[[Tensor, Tensor], Tensor] | None:
        """The same mean as `__call__` without a mask, as one fused torch call, for the
        common fixed-length cases; None where there is none."""
        if not self.logits:
            return None
        match self.loss.type:
            case "binary_crossentropy":
                return F.binary_cross_entropy_with_logits
            case "sparse_categorical_crossentropy":
                return _sparse_ce
            case "categorical_crossentropy":
                return _soft_ce
            case _:
                return None

    def probabilities(self, output: Tensor) -> Tensor:
        """What the spec's model outputs, given what this objective was fed."""
        if not self.logits:
            return output
        return torch.sigmoid(output) if self.loss.type == "binary_crossentropy" else torch.softmax(output, dim=-1)


def _sparse_ce(output: Tensor, target: Tensor) -> Tensor:
    return F.cross_entropy(output.reshape(-1, output.shape[-1]), target.reshape(-1))


def _soft_ce(output: Tensor, target: Tensor) -> Tensor:
    return F.cross_entropy(output.reshape(-1, output.shape[-1]), target.reshape(-1, target.shape[-1]))


def make_objective(loss: ir.Loss, final_activation: str | None, *, fuse: bool = True) -> Objective:
    """The objective for a model whose last activation is `final_activation` (the one
    `SpecModule.forward(logits=True)` would skip). `fuse=False` keeps the spec's
    probabilities (for tests comparing both forms)."""
    if loss.from_logits and loss.is_classification:
        return Objective(loss, logits=True, fused=False)
    fused = fuse and final_activation is not None and _LOGIT_PAIRS.get(loss.type) == final_activation
    return Objective(loss, logits=fused, fused=fused)
