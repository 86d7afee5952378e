"""The recurrences of `stepwise.py` as autograd functions with hand-derived backward passes.

`RNNScan`, `LSTMScan` and `GRUScan` each run one layer, every direction at once, on a
time-major input `[directions, T, B, F]` with stacked weights `[directions, ...]`. The
forward pass writes the input projection of all steps into the gate buffer with one
product, then per step adds the recurrent product in place and applies the gates in
place; what the backward pass needs stays in buffers borrowed from a `Workspace`
(returned when the backward pass is done, so a second backward pass is refused). The
backward pass runs the loop in reverse, one product per step, and computes the weight
and input gradients over all steps with one product each. LSTM and GRU take the rows
feeding their tanh gate scaled by 2 and compute tanh(x) as 2 sigmoid(2x) - 1. Given
`active` (each step's count of rows still running, the rows sorted longest first), a
step computes only those rows, forward and backward, as packing would: the rows past a
sequence's end keep zero states and zero gradients. The
backward passes are first-order only (`first_order`: torch's `once_differentiable`, run
without recording a graph); differentiating their gradients again, as a gradient
penalty does, raises `HIGHER_ORDER`, which names the setting that trains without them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from . import gemm, small_loop

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


class _Steps:
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
        return gemm.pick_accumulate(out, a, b) if self.one else _batched_accumulate

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


def _batched_accumulate(out: Tensor, a: Tensor, b: Tensor) -> Tensor:
    return out.baddbmm_(a, b)


def _project(ops: _Steps, out: Tensor, x: Tensor, w: Tensor, b: Tensor | None) -> None:
    """`out` `[D, T, B, G]` = x W^T + b, every step at once."""
    if b is None:
        ops.product(ops.flat(x), ops.flat(w).mT, out=ops.flat(out))
    else:
        ops.product_plus(ops.row(b), ops.flat(x), ops.flat(w).mT, out=ops.flat(out))


def _input_grads(ctx, ops: _Steps, d_pre: Tensor, x: Tensor, w_ih: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """The gradients of x, W_ih and the input bias from the pre-activations' `d_pre`."""
    d = ops.flat(d_pre)
    need = ctx.needs_input_grad
    dx = ops.product(d, ops.flat(w_ih)).view_as(x) if need[0] else None
    dw = ops.product(d.mT, ops.flat(x)).view_as(w_ih) if need[1] else None
    db = d_pre.sum(dim=(1, 2)) if need[2] else None
    return dx, dw, db


def _recurrent_grad(ops: _Steps, d_rec: Tensor, hs: Tensor) -> Tensor:
    """W_hh's gradient, `sum_t d_t^T h_{t-1}` over every step at once: `[D, G, H]`."""
    grad = ops.product(ops.flat(d_rec).mT, ops.flat(hs[:, :-1]))
    return grad.view(hs.shape[0], d_rec.shape[-1], hs.shape[-1])


def _state_grad(ops: _Steps, hs: Tensor, d_last: Tensor | None) -> Tensor:
    """The running gradient of the state, starting from the final state's."""
    dh = torch.zeros_like(hs[:, 0]) if d_last is None else d_last.clone()
    dh = dh[0] if ops.one else dh
    if d_last is not None and ops.active is not None:  # a row that stopped early returned zeros: a constant
        axis, last = (0 if ops.one else 1), ops.active[-1]
        dh.narrow(axis, last, dh.shape[axis] - last).zero_()
    return dh


def _done(ctx) -> tuple:
    """The saved buffers, once: a second backward pass would read reused memory."""
    if ctx.buffers is None:
        raise RuntimeError("rnnc's CPU recurrent layers support one backward pass per forward pass (no retain_graph)")
    buffers, ctx.buffers = ctx.buffers, None
    return buffers


class RNNScan(torch.autograd.Function):
    """h_t = act(x_t W_ih^T + b_ih + b_hh + h_{t-1} W_hh^T), act tanh or relu. One
    direction may come without the direction axis (`x` `[T, B, F]`, 2-D weights, 1-D
    biases), its results then without it too: the module's parameters go in as they
    are, with no autograd node between them and the loop."""

    @staticmethod
    def forward(ctx, x, w_ih, b_ih, b_hh, w_hh, space, relu, active=None):  # type: ignore[no-untyped-def, override]
        workspace, slot = space
        ctx.save_for_backward(x, w_ih, w_hh)
        ctx.squeeze = w_hh.dim() == 2
        b = None if b_ih is None else b_ih + b_hh
        if ctx.squeeze:
            x, w_ih, w_hh, b = x.unsqueeze(0), w_ih.unsqueeze(0), w_hh.unsqueeze(0), None if b is None else b.unsqueeze(0)
        directions, steps, batch, _ = x.shape
        units = w_hh.shape[-1]
        ops = _Steps(directions, active)
        hs = ops.states(directions, steps, batch, units, x)
        pre = workspace.take(slot + "pre", (directions, steps, batch, units), x)
        _project(ops, pre, x, w_ih, b)
        ctx.small = small_loop.applies(x, w_hh, active)
        if ctx.small:  # numpy's fixed costs per operation are a fraction of torch's
            small_loop.forward(pre[0], hs[0], w_hh[0], relu)
        else:
            h, w_t = ops.of(hs), ops.flat(w_hh).mT
            h_in, h_out, p = ops.live(h[:-1]), ops.live(h[1:]), ops.live(ops.of(pre))
            step = ops.step_product_plus(p[0], h_in[0], w_t, h_out[0])
            for t in range(steps):
                out = step(p[t], h_in[t], w_t, out=h_out[t])
                if relu:
                    out.relu_()
                else:
                    out.tanh_()
        ctx.buffers, ctx.hs, ctx.space, ctx.relu, ctx.active = (pre,), hs, space, relu, active
        ctx.set_materialize_grads(False)
        if ctx.squeeze:
            return hs[0, 1:], hs[0, steps].clone()
        return hs[:, 1:], hs[:, steps].clone()

    @staticmethod
    @first_order
    def backward(ctx, d_seq, d_last):  # type: ignore[no-untyped-def, override]
        x, w_ih, w_hh = ctx.saved_tensors
        if ctx.squeeze:
            x, w_ih, w_hh = x.unsqueeze(0), w_ih.unsqueeze(0), w_hh.unsqueeze(0)
            d_seq, d_last = (None if d is None else d.unsqueeze(0) for d in (d_seq, d_last))
        (d_pre,) = _done(ctx)  # the forward pass's input projection is not needed again
        hs, (workspace, slot) = ctx.hs, ctx.space
        ops = _Steps(hs.shape[0], ctx.active)
        dh_all = _state_grad(ops, hs, d_last)
        if ctx.small:
            small_loop.backward(d_pre[0], hs[0], w_hh[0], dh_all, None if d_seq is None else d_seq[0], ctx.relu)
        else:
            _rnn_steps_back(ctx, ops, hs, d_pre, w_hh, dh_all, d_seq)
        dx, dw_ih, db = _input_grads(ctx, ops, d_pre, x, w_ih)
        dw_hh = _recurrent_grad(ops, d_pre, hs)
        db_hh = None
        if ctx.needs_input_grad[3]:
            db_hh = d_pre.sum(dim=(1, 2)) if db is None else db.clone()
        workspace.give(slot + "pre", d_pre)
        if ctx.squeeze:
            dx, dw_ih, db, db_hh, dw_hh = (None if g is None else g[0] for g in (dx, dw_ih, db, db_hh, dw_hh))
        return dx, dw_ih, db, db_hh, dw_hh, None, None, None


def _rnn_steps_back(ctx, ops: _Steps, hs: Tensor, d_pre: Tensor, w_hh: Tensor, dh_all: Tensor, d_seq: Tensor | None) -> None:  # type: ignore[no-untyped-def]
    """`RNNScan`'s loop in reverse, in torch: `d_pre` gets each step's pre-activation gradient."""
    steps = hs.shape[1] - 1
    h, all_d, w = ops.live(ops.of(hs)[1:]), ops.of(d_pre), ops.flat(w_hh)
    d, tails, dh, square = ops.live(all_d), ops.tails(all_d), ops.each(dh_all, steps), ops.each(torch.empty_like(dh_all), steps)
    d_out = None if d_seq is None else ops.live(ops.of(d_seq))
    step = ops.step_product(d[0], w, dh[0])
    for t in range(steps - 1, -1, -1):
        if tails[t] is not None:
            tails[t].zero_()  # rows past their sequence's end: no gradient there
        if d_out is not None:
            dh[t].add_(d_out[t])
        if ctx.relu:
            torch.mul(dh[t], h[t] > 0, out=d[t])
        else:
            torch.mul(h[t], h[t], out=square[t])
            torch.addcmul(dh[t], dh[t], square[t], value=-1.0, out=d[t])  # dh * (1 - h^2)
        step(d[t], w, out=dh[t])


class LSTMScan(torch.autograd.Function):
    """torch's LSTM cell, gates i, f, g, o (the g rows of W_ih, b, W_hh scaled by 2)."""

    @staticmethod
    def forward(ctx, x, w_ih, b, w_hh, space, active=None):  # type: ignore[no-untyped-def, override]
        workspace, slot = space
        directions, steps, batch, _ = x.shape
        units = w_hh.shape[-1]
        ops = _Steps(directions, active)
        gates = workspace.take(slot + "gates", (directions, steps, batch, 4 * units), x)
        cs = workspace.take(slot + "c", (directions, steps + 1, batch, units), x)
        tanh_c = workspace.take(slot + "tanh_c", (directions, steps, batch, units), x)
        hs = ops.states(directions, steps, batch, units, x)
        cs[:, 0].zero_()
        _project(ops, gates, x, w_ih, b)
        a, (i, f, g, o) = ops.live(ops.of(gates)), [ops.live(block) for block in ops.blocks(gates, 4)]
        h, c, w_t = ops.of(hs), ops.of(cs), ops.flat(w_hh).mT
        h_in, h_out, c_in, c_out, tc = ops.live(h[:-1]), ops.live(h[1:]), ops.live(c[:-1]), ops.live(c[1:]), ops.live(ops.of(tanh_c))
        two, one = x.new_tensor(2.0), x.new_tensor(1.0)
        accumulate = ops.step_accumulate(a[0], h_in[0], w_t)
        for t in range(steps):
            accumulate(a[t], h_in[t], w_t).sigmoid_()
            torch.mul(f[t], c_in[t], out=c_out[t]).addcmul_(i[t], g[t], value=2.0).sub_(i[t])  # + i tanh(g)
            torch.mul(c_out[t], two, out=tc[t]).sigmoid_().mul_(two).sub_(one)  # tanh(c) = 2 sigmoid(2c) - 1
            torch.mul(o[t], tc[t], out=h_out[t])
        ctx.save_for_backward(x, w_ih, w_hh)
        ctx.buffers, ctx.hs, ctx.space, ctx.active = (gates, cs, tanh_c), hs, space, active
        ctx.set_materialize_grads(False)
        return hs[:, 1:], hs[:, steps].clone()

    @staticmethod
    @first_order
    def backward(ctx, d_seq, d_last):  # type: ignore[no-untyped-def, override]
        x, w_ih, w_hh = ctx.saved_tensors
        gates, cs, tanh_c = _done(ctx)
        hs, (workspace, slot) = ctx.hs, ctx.space
        ops = _Steps(hs.shape[0], ctx.active)
        units, steps = hs.shape[-1], hs.shape[1] - 1
        d_pre = workspace.take(slot + "d_pre", tuple(gates.shape), gates)
        dh_all = _state_grad(ops, hs, d_last)
        dc_all = torch.zeros_like(dh_all)
        dh, dc, tmp = ops.each(dh_all, steps), ops.each(dc_all, steps), ops.each(torch.empty_like(dh_all), steps)
        a, (i, f, g, o) = ops.live(ops.of(gates)), [ops.live(block) for block in ops.blocks(gates, 4)]
        c, tc = ops.live(ops.of(cs)[:-1]), ops.live(ops.of(tanh_c))
        all_d, w = ops.of(d_pre), ops.flat(w_hh)
        d, tails, (di, df, dg, do) = ops.live(all_d), ops.tails(all_d), [ops.live(block) for block in ops.blocks(d_pre, 4)]
        d_ifg = [step[..., : 3 * units].unflatten(-1, (3, units)) for step in d]
        d_out = None if d_seq is None else ops.live(ops.of(d_seq))
        two, one, dc_ = dh_all.new_tensor(2.0), dh_all.new_tensor(1.0), ops.each(dc_all.unsqueeze(-2), steps)
        step = ops.step_product(d[0], w, dh[0])
        for t in range(steps - 1, -1, -1):
            if tails[t] is not None:
                tails[t].zero_()  # rows past their sequence's end: no gradient there
            if d_out is not None:
                dh[t].add_(d_out[t])
            torch.mul(tc[t], tc[t], out=tmp[t]).sub_(one).mul_(o[t])
            dc[t].addcmul_(dh[t], tmp[t], value=-1.0)  # + dh o (1 - tanh(c)^2)
            torch.addcmul(a[t], a[t], a[t], value=-1.0, out=d[t])  # sigmoid' of every gate
            do[t].mul_(tc[t]).mul_(dh[t])
            di[t].mul_(torch.mul(g[t], two, out=tmp[t]).sub_(one))  # tanh(g)
            df[t].mul_(c[t])
            dg[t].mul_(i[t]).mul_(two)  # d(2 sigmoid(x) - 1)/dx = 2 sigmoid'
            d_ifg[t].mul_(dc_[t])
            step(d[t], w, out=dh[t])
            dc[t].mul_(f[t])
        dx, dw_ih, db = _input_grads(ctx, ops, d_pre, x, w_ih)
        dw_hh = _recurrent_grad(ops, d_pre, hs)
        for name, buffer in (("gates", gates), ("c", cs), ("tanh_c", tanh_c), ("d_pre", d_pre)):
            workspace.give(slot + name, buffer)
        return dx, dw_ih, db, dw_hh, None, None


class GRUScan(torch.autograd.Function):
    """torch's GRU cell, gates r, z, n, the reset gate applied after the recurrent
    product (the n rows of W_ih, b_ih, W_hh, b_hh scaled by 2)."""

    @staticmethod
    def forward(ctx, x, w_ih, b_ih, w_hh, b_hh, space, active=None):  # type: ignore[no-untyped-def, override]
        workspace, slot = space
        directions, steps, batch, _ = x.shape
        units = w_hh.shape[-1]
        ops = _Steps(directions, active)
        gates = workspace.take(slot + "gates", (directions, steps, batch, 3 * units), x)
        recurrent = workspace.take(slot + "recurrent", tuple(gates.shape), x)  # W_hh h + b_hh
        hs = ops.states(directions, steps, batch, units, x)
        _project(ops, gates, x, w_ih, b_ih)
        rz, (r, z, n) = ops.live(ops.of(gates[..., : 2 * units])), [ops.live(block) for block in ops.blocks(gates, 3)]
        h, w_t = ops.of(hs), ops.flat(w_hh).mT
        h_in, h_out = ops.live(h[:-1]), ops.live(h[1:])
        q, q_rz, q_n = ops.live(ops.of(recurrent)), ops.live(ops.of(recurrent[..., : 2 * units])), ops.live(ops.blocks(recurrent, 3)[2])
        bias = None if b_hh is None else ops.row(b_hh)
        two, one = x.new_tensor(2.0), x.new_tensor(1.0)
        tmp = ops.each(torch.empty_like(h[0]), steps)
        step = ops.step_product(h_in[0], w_t, q[0]) if bias is None else ops.step_product_plus(bias, h_in[0], w_t, q[0])
        for t in range(steps):
            if bias is None:
                step(h_in[t], w_t, out=q[t])
            else:
                step(bias, h_in[t], w_t, out=q[t])
            rz[t].add_(q_rz[t]).sigmoid_()
            n[t].addcmul_(r[t], q_n[t]).sigmoid_().mul_(two).sub_(one)  # tanh
            torch.addcmul(n[t], z[t], torch.sub(h_in[t], n[t], out=tmp[t]), out=h_out[t])  # (1 - z) n + z h
        ctx.save_for_backward(x, w_ih, w_hh)
        ctx.buffers, ctx.hs, ctx.space, ctx.hh_bias, ctx.active = (gates, recurrent), hs, space, b_hh is not None, active
        ctx.set_materialize_grads(False)
        return hs[:, 1:], hs[:, steps].clone()

    @staticmethod
    @first_order
    def backward(ctx, d_seq, d_last):  # type: ignore[no-untyped-def, override]
        x, w_ih, w_hh = ctx.saved_tensors
        gates, recurrent = _done(ctx)
        hs, (workspace, slot) = ctx.hs, ctx.space
        ops = _Steps(hs.shape[0], ctx.active)
        units, steps = hs.shape[-1], hs.shape[1] - 1
        d_pre = workspace.take(slot + "d_pre", tuple(gates.shape), gates)  # input side
        d_rec = workspace.take(slot + "d_rec", tuple(gates.shape), gates)  # recurrent side
        dh_all = _state_grad(ops, hs, d_last)
        dh, tmp = ops.each(dh_all, steps), ops.each(torch.empty_like(dh_all), steps)
        rz, (r, z, n), h = ops.live(ops.of(gates[..., : 2 * units])), [ops.live(block) for block in ops.blocks(gates, 3)], ops.live(ops.of(hs)[:-1])
        q_n, w = ops.live(ops.blocks(recurrent, 3)[2]), ops.flat(w_hh)
        d_rz, (dr, dz, dn) = ops.live(ops.of(d_pre[..., : 2 * units])), [ops.live(block) for block in ops.blocks(d_pre, 3)]
        all_dq = ops.of(d_rec)
        dq, dq_rz, dq_n = ops.live(all_dq), ops.live(ops.of(d_rec[..., : 2 * units])), ops.live(ops.blocks(d_rec, 3)[2])
        tails = list(zip(ops.tails(ops.of(d_pre)), ops.tails(all_dq), strict=True))
        d_out = None if d_seq is None else ops.live(ops.of(d_seq))
        one, minus_half = dh_all.new_tensor(1.0), dh_all.new_tensor(-0.5)
        step = ops.step_product_plus(tmp[0], dq[0], w, dh[0])
        for t in range(steps - 1, -1, -1):
            for tail in tails[t]:
                if tail is not None:
                    tail.zero_()  # rows past their sequence's end: no gradient there
            if d_out is not None:
                dh[t].add_(d_out[t])
            torch.mul(n[t], n[t], out=dn[t]).sub_(one).mul_(minus_half)  # dn/d(scaled pre-activation): (1 - n^2) / 2
            dn[t].mul_(torch.addcmul(dh[t], dh[t], z[t], value=-1.0, out=tmp[t]))  # through (1 - z) n
            torch.addcmul(rz[t], rz[t], rz[t], value=-1.0, out=d_rz[t])  # sigmoid'
            dr[t].mul_(dn[t]).mul_(q_n[t])
            dz[t].mul_(torch.sub(h[t], n[t], out=tmp[t]).mul_(dh[t]))
            dq_rz[t].copy_(d_rz[t])
            torch.mul(dn[t], r[t], out=dq_n[t])
            step(torch.mul(dh[t], z[t], out=tmp[t]), dq[t], w, out=dh[t])
        dx, dw_ih, db_ih = _input_grads(ctx, ops, d_pre, x, w_ih)
        dw_hh = _recurrent_grad(ops, d_rec, hs)
        db_hh = d_rec.sum(dim=(1, 2)) if ctx.hh_bias and ctx.needs_input_grad[4] else None
        for name, buffer in (("gates", gates), ("recurrent", recurrent), ("d_pre", d_pre), ("d_rec", d_rec)):
            workspace.give(slot + name, buffer)
        return dx, dw_ih, db_ih, dw_hh, db_hh, None, None
