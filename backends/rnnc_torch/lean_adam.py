"""Adam and AdamW whose CPU step is one call of torch's fused kernel.

`torch.optim.Adam(fused=True)` runs one kernel for every parameter, but reaches it
through Python that costs more than a small model's kernel: a profiler scope, the hook
lists, a pass over the parameters building six lists, grouping them by device and dtype.
`LeanAdam` and `LeanAdamW` keep those lists between steps and call the same two
operations torch's fused path calls (`_foreach_add_` on the step counts, then
`_fused_adam_`, or `_fused_adamw_`) with the group's current settings, so the updated
parameters and state are bit-identical to torch's. The state lives where torch keeps
it (`state_dict` unchanged). Anything the short path does not cover takes torch's own
step: several parameter groups, a missing gradient, a closure, step hooks, a gradient
scaler's `grad_scale`/`found_inf`, tensors off the CPU, a state not made yet (the
first step) or replaced since (`load_state_dict`). `zero_grad(set_to_none=True)` drops
the gradients without torch's profiler scope.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.optim import optimizer as torch_optimizer


class _Lean:
    """The short step; mixed into `torch.optim.Adam` (and so AdamW, which is Adam with
    decoupled weight decay)."""

    _lists: tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor], list[Tensor]] | None = None

    def _ready(self) -> tuple[list[Tensor], ...] | None:
        """(params, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps), or None where torch's step must run."""
        groups = self.param_groups  # type: ignore[attr-defined]
        if (
            len(groups) != 1
            or not groups[0]["fused"]
            or self._optimizer_step_pre_hooks  # type: ignore[attr-defined]
            or self._optimizer_step_post_hooks  # type: ignore[attr-defined]
            or torch_optimizer._global_optimizer_pre_hooks
            or torch_optimizer._global_optimizer_post_hooks
            or getattr(self, "grad_scale", None) is not None
            or getattr(self, "found_inf", None) is not None
        ):
            return None
        if self._lists is None:
            params = groups[0]["params"]
            states = [self.state.get(p) for p in params]  # type: ignore[attr-defined]
            if not params or any(not s for s in states) or any(not p.is_cpu for p in params):
                return None
            amsgrad = groups[0]["amsgrad"]
            self._lists = (list(params), [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
                           [s["max_exp_avg_sq"] for s in states] if amsgrad else [], [s["step"] for s in states])
        return self._lists

    def step(self, closure: Any = None) -> Any:
        lists = None if closure is not None else self._ready()
        grads = None if lists is None else [p.grad for p in lists[0]]
        if lists is None or grads is None or any(g is None for g in grads):
            out = _torch_step()(self, closure)
            self._lists = None  # the state may be new: looked up again next step
            return out
        params, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps = lists
        group = self.param_groups[0]  # type: ignore[attr-defined]
        beta1, beta2 = group["betas"]
        torch._foreach_add_(steps, 1)
        kernel = torch._fused_adamw_ if group["decoupled_weight_decay"] else torch._fused_adam_
        kernel(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, amsgrad=group["amsgrad"],
                     lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"],
                     maximize=group["maximize"], grad_scale=None, found_inf=None)
        return None

    step.hooked = True  # type: ignore[attr-defined]  # torch must not wrap it in its profiler scope (it checks this flag)

    def zero_grad(self, set_to_none: bool = True) -> None:
        if not set_to_none:
            super().zero_grad(set_to_none)  # type: ignore[misc]
            return
        for group in self.param_groups:  # type: ignore[attr-defined]
            for p in group["params"]:
                p.grad = None

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)  # type: ignore[misc]
        self._lists = None


def _torch_step() -> Any:
    """torch's Adam step inside torch's hook and profiler wrapper (torch wraps it only
    once a plain Adam is made, and the short step's class keeps torch from doing so)."""
    step = torch.optim.Adam.step
    return step if getattr(step, "hooked", False) else torch_optimizer.Optimizer.profile_hook_step(step)


class LeanAdam(_Lean, torch.optim.Adam):
    """`torch.optim.Adam` (fused) with the short CPU step."""


class LeanAdamW(_Lean, torch.optim.AdamW):
    """`torch.optim.AdamW` (fused) with the short CPU step."""
