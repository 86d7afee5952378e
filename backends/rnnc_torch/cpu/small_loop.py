"""A simple RNN layer in numpy, for layers so small that each torch operation's fixed
cost is most of its time.

A SimpleRNN(32) step at batch 32 is one 32x32x32 product and a tanh over 1,024 values.
Measured on torch 2.13 (one thread, AVX2 EPYC): torch takes 2.4 us for `addmm`, 4.2 us
for `tanh_` and 1 to 2.5 us for each view or reshape around them; numpy 2.6 us for the
product (OpenBLAS), 3.2 us for the tanh, 0.6 us for an add and 0.2 us for a view.
`forward` and `backward` run the whole of `scans.RNNScan` (one direction, every row
running) on numpy views of its tensors: the input projection, the time loop, and the
weight and input gradients, with no torch operation in between. The values match
torch's loop to float32 rounding (tanh and the products round differently in the last
bits). `applies` says where it runs: float32, one direction with every row running
every step, one intra-op thread (as `gemm`'s OpenBLAS route: two thread pools on the
same cores contend), a per-step product under `MAX_STEP_FLOPS`, and `RNNC_GEMM` not
forcing torch. `infer` runs a whole small simple RNN module (every layer) the same way
without gradients, for validation and inference (`policy.infers_in_numpy`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from . import gemm

# policy.SMALL_STEP_FLOPS: the size below which a step is mostly fixed costs (the seed
# model's SimpleRNN(32) at batch 32 is 6.6e4 FLOPs per step)
MAX_STEP_FLOPS = 1e6


def applies(x: Tensor, w_hh: Tensor, active: list[int] | None) -> bool:
    """Whether `RNNScan` runs in numpy here for input `x` (`[D, T, B, F]`, or `[T, B, F]`
    for one direction) and `w_hh` (`[D, H, H]` or `[H, H]`)."""
    directions = 1 if x.dim() == 3 else x.shape[0]
    return directions == 1 and active is None and fits(x.shape[-2], w_hh.shape[-1]) and viewable(x, w_hh)


def fits(batch: int, units: int) -> bool:
    """Whether a step of `units` at `batch` rows is small enough for numpy here: a
    per-step product under `MAX_STEP_FLOPS`, one intra-op thread, `RNNC_GEMM` not torch."""
    return 2 * batch * units * units <= MAX_STEP_FLOPS and torch.get_num_threads() == 1 and gemm.setting() != "torch"


# a diverging run overflows to inf and NaN, which the trainer reports as a NaN loss; torch's loop warns of nothing either
@np.errstate(over="ignore", invalid="ignore")
def forward(x: np.ndarray, w_ih: np.ndarray, b: np.ndarray | None, w_hh: np.ndarray, pre: np.ndarray, hs: np.ndarray,
            relu: bool) -> None:
    """The layer's forward pass: `pre` `[T, B, H]` = x W_ih^T + b for every step at once
    (`x` `[T, B, F]`, `w_ih` `[H, F]`, `b` `[H]`), then hs[t + 1] = act(pre[t] + hs[t]
    W_hh^T) step by step, in place (`hs` `[T + 1, B, H]`, step 0 the zero initial state)."""
    gemm._match_threads()
    np.matmul(x.reshape(-1, x.shape[-1]), w_ih.T, out=pre.reshape(-1, pre.shape[-1]))
    if b is not None:
        np.add(pre, b, out=pre)
    hs[0] = 0.0
    w_t = w_hh.T
    for t in range(pre.shape[0]):
        out = hs[t + 1]
        np.matmul(hs[t], w_t, out=out)
        np.add(out, pre[t], out=out)
        if relu:
            np.maximum(out, 0.0, out=out)
        else:
            np.tanh(out, out=out)


Grads = tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, np.ndarray | None]


@np.errstate(over="ignore", invalid="ignore")
def backward(d_pre: np.ndarray, hs: np.ndarray, x: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray, dh: np.ndarray,
             d_seq: np.ndarray | None, relu: bool, need: tuple[bool, bool, bool, bool]) -> Grads:
    """The layer's backward pass: the loop in reverse, then the gradients of `x`, `W_ih`,
    the bias and `W_hh` over every step at once, each where `need` asks for it (None
    elsewhere). `dh` (`[B, H]`, the final state's gradient on entry) runs back to the
    initial state's; `d_seq` `[T, B, H]` is the outputs' gradient, if any; `d_pre`
    `[T, B, H]` is scratch, left holding each step's pre-activation gradient. The
    activation's derivative of every step (1 - h^2, or h > 0) goes into `d_pre` first,
    in one pass over all steps; the loop multiplies it by the running gradient in place."""
    gemm._match_threads()
    d, g = d_pre, dh
    if relu:
        np.greater(hs[1:], 0.0, out=d)
    else:
        np.multiply(hs[1:], hs[1:], out=d)
        np.subtract(1.0, d, out=d)
    for t in range(d.shape[0] - 1, -1, -1):
        if d_seq is not None:
            np.add(g, d_seq[t], out=g)
        np.multiply(d[t], g, out=d[t])  # dh * (1 - h^2)
        np.matmul(d[t], w_hh, out=g)
    flat, features, units = d.reshape(-1, d.shape[-1]), x.shape[-1], hs.shape[-1]
    need_x, need_w_ih, need_b, need_w_hh = need
    dx = np.matmul(flat, w_ih).reshape(x.shape) if need_x else None
    dw_ih = np.matmul(flat.T, x.reshape(-1, features)) if need_w_ih else None
    db = flat.sum(axis=0) if need_b else None
    dw_hh = np.matmul(flat.T, hs[:-1].reshape(-1, units)) if need_w_hh else None
    return dx, dw_ih, db, dw_hh


def viewable(*tensors: Tensor | None) -> bool:
    """Whether numpy can work on these tensors' memory as they are (float32 CPU)."""
    return all(t is None or (t.is_cpu and t.dtype is torch.float32 and not t.is_conj() and not t.is_neg()) for t in tensors)


def infer(rnn: nn.RNNBase, x: Tensor, return_sequences: bool) -> Tensor:
    """What `rnn` (batch-first simple RNN, one direction, any number of layers) computes
    on `x` `[B, T, F]` without gradients, in numpy: the last layer's outputs `[B, T, H]`,
    or its final state `[B, H]`. Each layer's outputs feed the next, as torch's fused
    module does (no dropout between layers: this is evaluation)."""
    relu, units = rnn.mode == "RNN_RELU", rnn.hidden_size
    u = np.ascontiguousarray(x.detach().numpy().transpose(1, 0, 2))  # time-major [T, B, F]
    steps, batch = u.shape[0], u.shape[1]
    for weights in rnn.all_weights:  # per layer: W_ih, W_hh, and b_ih, b_hh where there is a bias
        w_ih, w_hh, *biases = (w.detach().numpy() for w in weights)
        b = np.add(*biases) if biases else None
        pre, hs = np.empty((steps, batch, units), np.float32), np.empty((steps + 1, batch, units), np.float32)
        forward(u, w_ih, b, w_hh, pre, hs, relu)
        u = hs[1:]
    if return_sequences:
        return torch.from_numpy(np.ascontiguousarray(u.transpose(1, 0, 2)))
    return torch.from_numpy(hs[steps])
