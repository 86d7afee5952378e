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
sequence's end keep zero states and zero gradients. The backward passes are
first-order only (`scan_steps.first_order`); the step views, products and gradient
helpers the three share are in `scan_steps.py`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from . import small_loop
from .scan_steps import Steps, first_order, input_grads, project, recurrent_grad, state_grad, take_buffers


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
        ctx.small = small_loop.applies(x, w_hh, active)
        if ctx.small:  # numpy's fixed costs per operation are a fraction of torch's
            return _small_forward(ctx, x, w_ih, b_ih, b_hh, w_hh, space, relu)
        b = None if b_ih is None else b_ih + b_hh
        if ctx.squeeze:
            x, w_ih, w_hh, b = x.unsqueeze(0), w_ih.unsqueeze(0), w_hh.unsqueeze(0), None if b is None else b.unsqueeze(0)
        directions, steps, batch, _ = x.shape
        units = w_hh.shape[-1]
        ops = Steps(directions, active)
        hs = ops.states(directions, steps, batch, units, x)
        pre = workspace.take(slot + "pre", (directions, steps, batch, units), x)
        project(ops, pre, x, w_ih, b)
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
        if ctx.small:
            return _small_backward(ctx, d_seq, d_last)
        x, w_ih, w_hh = ctx.saved_tensors
        if ctx.squeeze:
            x, w_ih, w_hh = x.unsqueeze(0), w_ih.unsqueeze(0), w_hh.unsqueeze(0)
            d_seq, d_last = (None if d is None else d.unsqueeze(0) for d in (d_seq, d_last))
        (d_pre,) = take_buffers(ctx)  # the forward pass's input projection is not needed again
        hs, (workspace, slot) = ctx.hs, ctx.space
        ops = Steps(hs.shape[0], ctx.active)
        dh_all = state_grad(ops, hs, d_last)
        _rnn_steps_back(ctx, ops, hs, d_pre, w_hh, dh_all, d_seq)
        dx, dw_ih, db = input_grads(ctx, ops, d_pre, x, w_ih)
        dw_hh = recurrent_grad(ops, d_pre, hs)
        db_hh = None
        if ctx.needs_input_grad[3]:
            db_hh = d_pre.sum(dim=(1, 2)) if db is None else db.clone()
        workspace.give(slot + "pre", d_pre)
        if ctx.squeeze:
            dx, dw_ih, db, db_hh, dw_hh = (None if g is None else g[0] for g in (dx, dw_ih, db, db_hh, dw_hh))
        return dx, dw_ih, db, db_hh, dw_hh, None, None, None


def _small_forward(ctx, x, w_ih, b_ih, b_hh, w_hh, space, relu):  # type: ignore[no-untyped-def]
    """`RNNScan.forward` in numpy (small_loop.py): one direction, every row running; `x`
    `[T, B, F]` (`ctx.squeeze`) or `[1, T, B, F]`, its results shaped to match."""
    workspace, slot = space
    steps, batch, units = x.shape[-3], x.shape[-2], w_hh.shape[-1]
    hs = x.new_empty((steps + 1, batch, units) if ctx.squeeze else (1, steps + 1, batch, units))
    pre = workspace.take(slot + "pre", (steps, batch, units), x)
    b = None if b_ih is None else np.add(_one(ctx, b_ih), _one(ctx, b_hh))
    small_loop.forward(_one(ctx, x), _one(ctx, w_ih), b, _one(ctx, w_hh), pre.numpy(), _one(ctx, hs), relu)
    ctx.buffers, ctx.hs, ctx.space, ctx.relu = (pre,), hs, space, relu
    ctx.set_materialize_grads(False)
    if ctx.squeeze:
        return hs[1:], hs[steps].clone()
    return hs[:, 1:], hs[:, steps].clone()


def _small_backward(ctx, d_seq: Tensor | None, d_last: Tensor | None) -> tuple:  # type: ignore[no-untyped-def]
    """`RNNScan.backward` after `_small_forward`: the gradients from numpy's arrays."""
    x, w_ih, w_hh = ctx.saved_tensors
    (d_pre,) = take_buffers(ctx)
    workspace, slot = ctx.space
    h = _one(ctx, ctx.hs)
    dh = np.zeros(h.shape[1:], np.float32) if d_last is None else _one(ctx, d_last).copy()
    need = ctx.needs_input_grad
    dx, dw_ih, db, dw_hh = small_loop.backward(
        d_pre.numpy(), h, _one(ctx, x), _one(ctx, w_ih), _one(ctx, w_hh), dh, None if d_seq is None else _one(ctx, d_seq),
        ctx.relu, (need[0], need[1], need[2] or need[3], need[4]))
    workspace.give(slot + "pre", d_pre)
    grads = [_tensor(ctx, g) for g in (dx, dw_ih, db if need[2] else None, None if db is None or not need[3] else db.copy(), dw_hh)]
    return (*grads, None, None, None)


def _one(ctx, t: Tensor) -> np.ndarray:  # type: ignore[no-untyped-def]
    """A tensor of the one direction as numpy's view, without the direction axis."""
    a = t.detach().numpy()
    return a if ctx.squeeze else a[0]


def _tensor(ctx, a: np.ndarray | None) -> Tensor | None:  # type: ignore[no-untyped-def]
    """A gradient from numpy, with the direction axis where the inputs had one."""
    if a is None:
        return None
    return torch.from_numpy(a if ctx.squeeze else a[None])


def _rnn_steps_back(ctx, ops: Steps, hs: Tensor, d_pre: Tensor, w_hh: Tensor, dh_all: Tensor, d_seq: Tensor | None) -> None:  # type: ignore[no-untyped-def]
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
        ops = Steps(directions, active)
        gates = workspace.take(slot + "gates", (directions, steps, batch, 4 * units), x)
        cs = workspace.take(slot + "c", (directions, steps + 1, batch, units), x)
        tanh_c = workspace.take(slot + "tanh_c", (directions, steps, batch, units), x)
        hs = ops.states(directions, steps, batch, units, x)
        cs[:, 0].zero_()
        project(ops, gates, x, w_ih, b)
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
        gates, cs, tanh_c = take_buffers(ctx)
        hs, (workspace, slot) = ctx.hs, ctx.space
        ops = Steps(hs.shape[0], ctx.active)
        units, steps = hs.shape[-1], hs.shape[1] - 1
        d_pre = workspace.take(slot + "d_pre", tuple(gates.shape), gates)
        dh_all = state_grad(ops, hs, d_last)
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
        dx, dw_ih, db = input_grads(ctx, ops, d_pre, x, w_ih)
        dw_hh = recurrent_grad(ops, d_pre, hs)
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
        ops = Steps(directions, active)
        gates = workspace.take(slot + "gates", (directions, steps, batch, 3 * units), x)
        recurrent = workspace.take(slot + "recurrent", tuple(gates.shape), x)  # W_hh h + b_hh
        hs = ops.states(directions, steps, batch, units, x)
        project(ops, gates, x, w_ih, b_ih)
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
        gates, recurrent = take_buffers(ctx)
        hs, (workspace, slot) = ctx.hs, ctx.space
        ops = Steps(hs.shape[0], ctx.active)
        units, steps = hs.shape[-1], hs.shape[1] - 1
        d_pre = workspace.take(slot + "d_pre", tuple(gates.shape), gates)  # input side
        d_rec = workspace.take(slot + "d_rec", tuple(gates.shape), gates)  # recurrent side
        dh_all = state_grad(ops, hs, d_last)
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
        dx, dw_ih, db_ih = input_grads(ctx, ops, d_pre, x, w_ih)
        dw_hh = recurrent_grad(ops, d_rec, hs)
        db_hh = d_rec.sum(dim=(1, 2)) if ctx.hh_bias and ctx.needs_input_grad[4] else None
        for name, buffer in (("gates", gates), ("recurrent", recurrent), ("d_pre", d_pre), ("d_rec", d_rec)):
            workspace.give(slot + name, buffer)
        return dx, dw_ih, db_ih, dw_hh, db_hh, None, None
