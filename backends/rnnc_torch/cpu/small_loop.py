"""A simple RNN's time loop in numpy, for layers so small that each torch operation's
fixed cost is most of its time.

A SimpleRNN(32) step at batch 32 is one 32x32x32 product and a tanh over 1,024
values: torch takes about 4 us for `addmm` and 5 us for `tanh_` there (operator
dispatch, TensorIterator set-up), numpy about 3 us for the product (OpenBLAS) and 1 us
for each elementwise operation. `forward` and `backward` run the loop of
`scans.RNNScan` (one direction, every row running) on numpy views of the same buffers,
so the tensors around it are untouched; the values match torch's loop to float32
rounding (tanh and the product round differently in the last bits). `applies` says
where it runs: float32, one direction with every row running every step, one intra-op
thread (as `gemm`'s OpenBLAS route: two thread pools on the same cores contend), a
per-step product under `MAX_STEP_FLOPS`, and `RNNC_GEMM` not forcing torch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from . import gemm

# policy.SMALL_STEP_FLOPS: the size below which a step is mostly fixed costs (the seed
# model's SimpleRNN(32) at batch 32 is 6.6e4 FLOPs per step)
MAX_STEP_FLOPS = 1e6


def applies(x: Tensor, w_hh: Tensor, active: list[int] | None) -> bool:
    """Whether `RNNScan` runs its loop here for input `x` `[D, T, B, F]` and `w_hh` `[D, H, H]`."""
    directions, _, batch, _ = x.shape
    units = w_hh.shape[-1]
    return (
        directions == 1
        and active is None
        and 2 * batch * units * units <= MAX_STEP_FLOPS
        and torch.get_num_threads() == 1
        and gemm.setting() != "torch"
        and viewable(x, w_hh)
    )


def forward(pre: Tensor, hs: Tensor, w_hh: Tensor, relu: bool) -> None:
    """hs[t + 1] = act(pre[t] + hs[t] W_hh^T) for every step, in place: `pre` `[T, B, H]`,
    `hs` `[T + 1, B, H]` (step 0 the initial state), `w_hh` `[H, H]`."""
    gemm._match_threads()
    p, h, w_t = pre.numpy(), hs.numpy(), w_hh.detach().numpy().T
    for t in range(p.shape[0]):
        out = h[t + 1]
        np.matmul(h[t], w_t, out=out)
        np.add(out, p[t], out=out)
        if relu:
            np.maximum(out, 0.0, out=out)
        else:
            np.tanh(out, out=out)


def backward(d_pre: Tensor, hs: Tensor, w_hh: Tensor, dh: Tensor, d_seq: Tensor | None, relu: bool) -> None:
    """The loop in reverse: `d_pre[t]` gets the gradient of step t's pre-activation, `dh`
    (`[B, H]`, the final state's gradient on entry) runs back to the initial state's;
    `d_seq` `[T, B, H]` is the outputs' gradient, if any."""
    gemm._match_threads()
    d, h, w, g = d_pre.numpy(), hs.numpy(), w_hh.detach().numpy(), dh.numpy()
    out = None if d_seq is None else d_seq.detach().numpy()
    square = np.empty_like(g)
    for t in range(d.shape[0] - 1, -1, -1):
        if out is not None:
            np.add(g, out[t], out=g)
        if relu:
            np.multiply(g, h[t + 1] > 0, out=d[t])
        else:
            np.multiply(h[t + 1], h[t + 1], out=square)
            np.subtract(1.0, square, out=square)
            np.multiply(g, square, out=d[t])  # dh * (1 - h^2)
        np.matmul(d[t], w, out=g)


def viewable(*tensors: Tensor | None) -> bool:
    """Whether numpy can work on these tensors' memory as they are (float32 CPU)."""
    return all(t is None or (t.is_cpu and t.dtype is torch.float32 and not t.is_conj() and not t.is_neg()) for t in tensors)
