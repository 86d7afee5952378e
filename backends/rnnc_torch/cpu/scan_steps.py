"""What the three scans of `scans.py` share: per-step views of their buffers and the
matrix products over them (`Steps`), the input projection and the gradients computed
over all steps at once, the one-use buffers, and `first_order`, which keeps their
hand-derived backward passes from being differentiated again: doing so raises
`HIGHER_ORDER`, which names the setting that trains without them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from . import gemm


HIGHER_ORDER = (
    "rnnc's CPU recurrent layers have first-order gradients only; for higher-order gradients "
    "(create_graph=True, then backward again) train with training.kernels: torch"
)


class _FirstOrder(torch.autograd.Function):
    """The gradients as they are; differentiating them raises `HIGHER_ORDER` (before
    `once_differentiable`'s own error is reached, which names no way out)."""

    @staticmethod
    def forward(ctx, *grads):  # type: ignore[no-untyped-def, override]
        return tuple(None if g is None else g.view_as(g) for g in grads)

    @staticmethod
    def backward(ctx, *_):  # type: ignore[no-untyped-def, override]
        raise RuntimeError(HIGHER_ORDER)


def first_order(backward: Callable[..., tuple]) -> Callable[..., tuple]:
    """`backward` under `once_differentiable`; while a graph of the gradients is being
    recorded (`create_graph=True`) they come out of `_FirstOrder`, also where the
    incoming gradients need none (a loss's own gradient), which `once_differentiable`
    leaves without a graph and so with torch's "does not require grad" later."""
    once = once_differentiable(backward)

    @functools.wraps(backward)
    def wrapper(ctx, *grads):  # type: ignore[no-untyped-def]
        outputs = once(ctx, *grads)
        if not torch.is_grad_enabled():
            return outputs
        return _FirstOrder.apply(*(None if g is None else g.detach().requires_grad_() for g in outputs))

    return wrapper


class Steps:
    """Per-step views of `[D, T, B, X]` buffers and the matching matrix products: with
    one direction the direction axis is dropped and 2-D products run (cheaper per call
    than batched ones, which is most of a small layer's cost), each by the route
    `gemm.pick` chooses for its shapes; a loop picks once (`step_*`) and runs that route
    every step."""

    def __init__(self, directions: int, active: list[int] | None = None):
        self.one = directions == 1
        self.active = active  # rows still running at each step (rows sorted by length), None: all

    def product(self, a: Tensor, b: Tensor, out: Tensor | None = None) -> Tensor:
        """a @ b (into `out`)."""
        return self.step_product(a, b, out)(a, b, out=out)

    def product_plus(self, bias: Tensor, a: Tensor, b: Tensor, out: Tensor | None = None) -> Tensor:
        """bias + a @ b (into `out`)."""
        return self.step_product_plus(bias, a, b, out)(bias, a, b, out=out)

    def step_product(self, a: Tensor, b: Tensor, out: Tensor | None) -> gemm.Product:
        """torch.mm's signature for products shaped like a @ b into `out`."""
        return gemm.pick(a, b, out=out) if self.one else torch.bmm

    def step_product_plus(self, bias: Tensor, a: Tensor, b: Tensor, out: Tensor | None) -> gemm.Product:
        """torch.addmm's signature for products shaped like bias + a @ b into `out`."""
        return gemm.pick(a, b, bias, out) if self.one else torch.baddbmm

    def step_accumulate(self, out: Tensor, a: Tensor, b: Tensor) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
        """`route(out, a, b)`: out += a @ b in place, for products shaped like these."""
        return gemm.pick_accumulate(out, a, b) if self.one else batched_accumulate

    def of(self, buffer: Tensor) -> tuple[Tensor, ...]:
        """The step views of `buffer` `[D, T, B, X]`: `[B, X]` or `[D, B, X]` each."""
        return (buffer[0] if self.one else buffer.transpose(0, 1)).unbind(0)

    def blocks(self, buffer: Tensor, count: int) -> list[tuple[Tensor, ...]]:
        """The step views of each of `count` equal gate blocks of `buffer`'s last axis
        (made once: slicing inside the time loop costs more than the arithmetic)."""
        return [self.of(block) for block in buffer.chunk(count, dim=-1)]

    def flat(self, buffer: Tensor) -> Tensor:
        """`[D, T, B, X]` (or `[D, G, X]` weights) as `[T * B, X]` or `[D, T * B, X]`."""
        flat = buffer.reshape(buffer.shape[0], -1, buffer.shape[-1])
        return flat[0] if self.one else flat

    def live(self, views: Sequence[Tensor]) -> list[Tensor]:
        """Each step's view cut to the rows still running at that step (`active`)."""
        if self.active is None:
            return list(views)
        axis = 0 if self.one else 1
        return [v if a == v.shape[axis] else v.narrow(axis, 0, a) for v, a in zip(views, self.active, strict=True)]

    def each(self, buffer: Tensor, steps: int) -> list[Tensor]:
        """`buffer` (one step's `[B, X]` or `[D, B, X]`) as `live` views for every step."""
        return self.live([buffer] * steps)

    def tails(self, views: Sequence[Tensor]) -> list[Tensor | None]:
        """Each step's view of the rows no longer running (None where all run)."""
        if self.active is None:
            return [None] * len(views)
        axis = 0 if self.one else 1
        return [None if a == v.shape[axis] else v.narrow(axis, a, v.shape[axis] - a) for v, a in zip(views, self.active, strict=True)]

    def states(self, directions: int, steps: int, batch: int, units: int, like: Tensor) -> Tensor:
        """The state buffer `[D, T + 1, B, H]`, step 0 zero; all zero where rows stop
        early, so the rows past a sequence's end hold zeros (outputs, weight gradients)."""
        if self.active is not None:
            return like.new_zeros(directions, steps + 1, batch, units)
        hs = like.new_empty(directions, steps + 1, batch, units)
        hs[:, 0].zero_()
        return hs

    def row(self, b: Tensor) -> Tensor:
        """A `[D, G]` bias as an addend for `[B, G]` or `[D, B, G]` products."""
        return b[0] if self.one else b.unsqueeze(1)


def batched_accumulate(out: Tensor, a: Tensor, b: Tensor) -> Tensor:
    return out.baddbmm_(a, b)


def project(ops: Steps, out: Tensor, x: Tensor, w: Tensor, b: Tensor | None) -> None:
    """`out` `[D, T, B, G]` = x W^T + b, every step at once."""
    if b is None:
        ops.product(ops.flat(x), ops.flat(w).mT, out=ops.flat(out))
    else:
        ops.product_plus(ops.row(b), ops.flat(x), ops.flat(w).mT, out=ops.flat(out))


def input_grads(ctx, ops: Steps, d_pre: Tensor, x: Tensor, w_ih: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """The gradients of x, W_ih and the input bias from the pre-activations' `d_pre`."""
    d = ops.flat(d_pre)
    need = ctx.needs_input_grad
    dx = ops.product(d, ops.flat(w_ih)).view_as(x) if need[0] else None
    dw = ops.product(d.mT, ops.flat(x)).view_as(w_ih) if need[1] else None
    db = d_pre.sum(dim=(1, 2)) if need[2] else None
    return dx, dw, db


def recurrent_grad(ops: Steps, d_rec: Tensor, hs: Tensor) -> Tensor:
    """W_hh's gradient, `sum_t d_t^T h_{t-1}` over every step at once: `[D, G, H]`."""
    grad = ops.product(ops.flat(d_rec).mT, ops.flat(hs[:, :-1]))
    return grad.view(hs.shape[0], d_rec.shape[-1], hs.shape[-1])


def state_grad(ops: Steps, hs: Tensor, d_last: Tensor | None) -> Tensor:
    """The running gradient of the state, starting from the final state's."""
    dh = torch.zeros_like(hs[:, 0]) if d_last is None else d_last.clone()
    dh = dh[0] if ops.one else dh
    if d_last is not None and ops.active is not None:  # a row that stopped early returned zeros: a constant
        axis, last = (0 if ops.one else 1), ops.active[-1]
        dh.narrow(axis, last, dh.shape[axis] - last).zero_()
    return dh


def take_buffers(ctx) -> tuple:
    """The saved buffers, once: a second backward pass would read reused memory."""
    if ctx.buffers is None:
        raise RuntimeError("rnnc's CPU recurrent layers support one backward pass per forward pass (no retain_graph)")
    buffers, ctx.buffers = ctx.buffers, None
    return buffers
