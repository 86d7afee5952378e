"""When each part of the CPU training path applies, and every threshold it is tuned by.

The path has three parts that must agree: rnnc's own time loop for recurrent layers
(`stepwise`), one intra-op thread for models whose steps are tiny (`threads`), and
sharded steps (`shards`), which pay only where no recurrent layer runs that loop. Each
question is answered here once, and the others ask it rather than re-deciding:
`loop_pays` (does a recurrent layer of this kind and size beat torch's kernel in rnnc's
loop at this batch size), `applies` (does this forward pass run the loop: `loop_pays`
plus what the tensors allow), `runs_a_time_loop` (does any layer of a model at so many
rows: `loop_pays` of each), `training_threads` and `shard_count` (which reads the two
before it). `training.kernels: torch` answers no to every one, so training runs on
torch's own kernels with torch's thread setting, as a plain PyTorch loop would. The
thresholds were measured on 2-core x86 CPUs (bench/README.md, "What rnnc does for
speed"); each names the measurement behind it, and a different machine may want
different values. The one choice that measured different between two such machines,
the loop or torch's kernel for a large one-direction LSTM or GRU, is measured on each
machine (`loop_choice`).
"""

from __future__ import annotations

from typing import assert_never

import torch
from torch import Tensor, nn

from rnnc import ir

from . import gemm, loop_choice, small_loop
from .stepwise import GATES

# Below this recurrent product per step, 2 * batch * gates * units^2 FLOPs, torch's
# one-direction GRU/LSTM kernel beats rnnc's loop (its per-step overhead dominates): on
# an AVX2 EPYC, bench/README.md item 1, fwd + bwd of one layer, one thread, torch / rnnc
# ms: LSTM(64) batch 32 3.0 / 5.7 (oneDNN's fused kernel has less per-step overhead than
# a Python loop), LSTM(128) batch 64 56.0 / 47.7. At or above it, which is faster
# depends on the CPU (on an AVX-512 EPYC LSTM(128) batch 64 was 32.6 / 38.5) and is
# measured once per machine (`loop_choice`). Simple RNNs and bidirectional layers always
# run the loop (SimpleRNN(128) 15.9 / 12.9, bidirectional GRU(64) 49.5 / 32.4; on the
# AVX-512 EPYC 12.8 / 10.2 and 44.3 / 31.3).
MIN_PRODUCT_FLOPS = {"GRU": 1.5e6, "LSTM": 6e6}

# A model whose largest per-step product is under this trains on one intra-op thread.
# bench/README.md item 4: the seed model (SimpleRNN(32) at batch 32, 6.6e4 FLOPs) 43069
# samples/s on one thread against PyTorch's 31717 on two; an 8e6 threshold, which also
# put workloads (c) and (d) on one thread, gave (d) 0.69x at load 1.0, and LSTM(64) at
# batch 32 (2e6) trains 1.5x faster on two threads than on one on an idle machine.
SMALL_STEP_FLOPS = 1e6

# Sharded steps, bench/README.md item 5 (2 threads, unsharded -> sharded samples/s):
# (b) 1849 -> 2972 (1.61x), (d) 4943 -> 5229 (1.06x), and (c), whose bidirectional GRUs
# run rnnc's loop, 754 -> 681 (0.90x), hence `runs_a_time_loop`. MIN_ROWS was not
# measured on its own: a shard smaller than this spends its time on per-operation
# overhead. MAX_SHARDS: more than 4 threads was not measured (machines with more cores
# keep torch's own parallelism).
MIN_ROWS = 16
MAX_SHARDS = 4

# A simple RNN's forward pass without gradients runs in numpy up to this many state
# values per step (rows x units). numpy's float32 tanh is not vectorised on an AVX2 CPU
# (3 ns a value) and torch's is, so numpy's lead in fixed costs runs out as the batch
# grows. The seed model's forward pass (SimpleRNN(32), dense(1)), one thread, AVX2 EPYC,
# numpy / torch's nn.RNN, us: batch 1 146 / 166, 32 213 / 236, 64 269 / 287, 128
# 386 / 383, 256 614 / 579.
MAX_INFER_VALUES = 64 * 32


def check_settings() -> None:
    """The environment's overrides (`RNNC_GEMM`, `RNNC_LOOP`) read now, so that a wrong
    value is refused before training starts (a `UsageError`: one line, exit 2) rather
    than when a layer first asks, or never, for a model none of whose layers does."""
    gemm.setting()
    loop_choice.setting()


def loop_pays(mode: str, bidirectional: bool, units: int, batch: int, threads: int | None = None) -> bool:
    """Whether rnnc's loop beats torch's kernel for a layer described by torch's `mode`
    name, direction and size at `batch` rows on `threads` intra-op threads (default:
    torch's count now): always for simple RNNs (torch records each step's operations)
    and bidirectional layers (torch runs the directions one after the other, and packs
    variable-length batches); for one-direction GRU and LSTM from a recurrent product per
    step of `MIN_PRODUCT_FLOPS` (below it the loop's per-step overhead dominates) where
    `loop_choice` measured it faster on this machine."""
    if mode in ("RNN_TANH", "RNN_RELU") or bidirectional:
        return True
    if 2 * batch * GATES[mode] * units**2 < MIN_PRODUCT_FLOPS[mode]:
        return False
    return loop_choice.loop_is_faster(mode, units, batch, torch.get_num_threads() if threads is None else threads)


def pays(rnn: nn.RNNBase, batch: int) -> bool:
    """`loop_pays` for torch module `rnn` at `batch` rows."""
    return loop_pays(rnn.mode, rnn.bidirectional, rnn.hidden_size, batch)


def applies(rnn: nn.RNNBase, x: Tensor, lengths: Tensor | None = None, kernels: str = "auto") -> bool:
    """Whether `stepwise.run` computes `rnn` on `x` (otherwise torch's module does): under
    `kernels: auto`, for float32 CPU tensors with gradients on, no autocast, not under
    `torch.compile`, where it pays; not for a relu simple RNN with lengths (torch packs
    it, so a long padded tail cannot overflow its state)."""
    return (
        kernels == "auto"
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and torch.is_grad_enabled()
        and not torch.is_autocast_enabled("cpu")
        and not torch.compiler.is_compiling()
        and rnn.mode in GATES
        and not getattr(rnn, "proj_size", 0)
        and (lengths is None or rnn.mode != "RNN_RELU")
        and pays(rnn, x.shape[0])
    )


def infers_in_numpy(rnn: nn.RNNBase, x: Tensor, lengths: Tensor | None = None, kernels: str = "auto") -> bool:
    """Whether `small_loop.infer` computes `rnn` on batch-first `x` without gradients
    (validation, `rnnc_torch` inference), where torch's module would: a one-direction
    simple RNN with every row running every step (no lengths) and no dropout between
    its layers in training mode, float32 on the CPU, not traced or compiled, one thread,
    `RNNC_GEMM` not torch, at most `MAX_INFER_VALUES` state values per step. Measured (one thread, AVX2 EPYC, torch 2.13): SimpleRNN(32)
    over 10 steps at batch 32, 181 us in torch's `nn.RNN`, 209 us through `RNNScan`
    without gradients, 104 us in numpy."""
    return (
        lengths is None
        and kernels == "auto"
        and rnn.mode in ("RNN_TANH", "RNN_RELU")
        and not rnn.bidirectional
        and not (rnn.training and rnn.dropout)  # torch's module would drop between its layers
        and not torch.is_grad_enabled()
        and type(x) is Tensor  # a plain tensor: not a fake or traced one, whose memory numpy cannot read
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and x.dim() == 3
        and x.shape[1] > 0
        and x.shape[0] * rnn.hidden_size <= MAX_INFER_VALUES
        and small_loop.fits(x.shape[0], rnn.hidden_size)
        and small_loop.viewable(rnn.weight_hh_l0)
        and not torch.is_autocast_enabled("cpu")
        and not torch.compiler.is_compiling()
        and not torch.jit.is_tracing()
    )


def runs_a_time_loop(model: ir.Model, rows: int, threads: int | None = None) -> bool:
    """Whether a recurrent layer of `model` would train in rnnc's loop on batches of
    `rows` on `threads` intra-op threads (default: torch's count now): `loop_pays` of
    each, the question `applies` asks of each call, or in keras_cells' time loop (a
    cell torch lacks), which is one as well. A relu simple RNN counts even though torch
    runs it where there are lengths: the answer must hold for every batch."""
    if model.training.kernels == "torch":
        return False
    for node in model.nodes:
        layer = node.layer
        if isinstance(layer, ir.SimpleRNN | ir.LSTM | ir.GRU) and (
            layer.keras_cell  # keras_cells' time loop: as many small operations per step, and in Python
            or loop_pays(_mode(layer), layer.bidirectional, layer.units, rows, threads)
        ):
            return True
    return False


def _mode(layer: ir.SimpleRNN | ir.LSTM | ir.GRU) -> str:
    """torch's `mode` name for the module that runs `layer`."""
    match layer:
        case ir.SimpleRNN():
            return "RNN_RELU" if layer.activation == "relu" else "RNN_TANH"
        case ir.LSTM():
            return "LSTM"
        case ir.GRU():
            return "GRU"
        case _:
            assert_never(layer)


def largest_step_product(model: ir.Model, batch: int) -> float:
    """FLOPs of the largest matrix product one time step of `model` runs on `batch` sequences."""
    largest = 0.0
    for node in model.nodes:
        layer, features = node.layer, node.input_shape[-1]
        match layer:
            case ir.SimpleRNN() | ir.LSTM() | ir.GRU():
                largest = max(largest, 2.0 * batch * layer.gates * layer.units * layer.units * layer.directions)
            case ir.Dense() if isinstance(features, int):
                largest = max(largest, 2.0 * batch * features * layer.units)
            case ir.Conv1D() if isinstance(features, int):
                largest = max(largest, 2.0 * batch * layer.kernel_size * features * layer.filters)
            case _:
                pass
    return largest


def training_threads(model: ir.Model, device: torch.device) -> int | None:
    """1 for a CPU model whose steps are small (under `SMALL_STEP_FLOPS`), else None
    (keep torch's setting). Depends only on the model, so a resumed run chooses alike."""
    if (
        model.training.kernels == "torch"
        or device.type != "cpu"
        or largest_step_product(model, model.training.batch_size) >= SMALL_STEP_FLOPS
    ):
        return None
    return 1


def shard_count(model: ir.Model, module: nn.Module, device: torch.device) -> int:
    """How many threads each training batch of `module` (`model` built) is split across
    (1: not split): torch's intra-op thread count, where all of these hold: a CPU
    device; fp32 or bf16 (autocast state is per thread: each shard enters it); no dropout inside torch's multi-layer
    recurrent kernels (it draws from the global generator, which threads would reach in
    a racing order); steps too large for `training_threads` to put on one thread; 2 to
    `MAX_SHARDS` threads of at least `MIN_ROWS` rows; and no recurrent layer running
    rnnc's loop at a shard's size (`runs_a_time_loop`: its many small operations per
    step take the GIL between them, so two threads of it contend)."""
    threads = torch.get_num_threads()
    if (
        model.training.kernels == "torch"
        or device.type != "cpu"
        or model.training.precision not in ("fp32", "bf16")  # bf16: each shard under autocast (precision.py)
        or _fused_dropout(module)
        or training_threads(model, device) is not None
        or not 2 <= threads <= MAX_SHARDS
        or model.training.batch_size < MIN_ROWS * threads
        or runs_a_time_loop(model, -(-model.training.batch_size // threads), 1)  # the largest shard, on its one thread
    ):
        return 1
    return threads


def _fused_dropout(module: nn.Module) -> bool:
    """Whether a multi-layer torch RNN drops between its layers (inside its kernel)."""
    return any(isinstance(m, nn.RNNBase) and m.num_layers > 1 and m.dropout > 0 for m in module.modules())
