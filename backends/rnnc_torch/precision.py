"""`training.precision`: automatic mixed precision for the training loop.

`fp32` (the default) runs as written. `bf16` and `fp16` run the forward pass and the
loss under `torch.autocast` (matrix products and recurrent kernels in the lower
precision, reductions and losses in float32; the parameters and the optimizer state
stay float32, so the saved weights are float32 either way). `fp16` has a narrow range,
so its gradients go through a `GradScaler` (scaled up before backward, unscaled before
clipping and the step, steps with inf/NaN gradients skipped). On a CPU, `bf16` uses
CPU autocast and needs a processor with native bf16 arithmetic (`BF16_FLAGS` in
/proc/cpuinfo: AVX512_BF16 or AMX-BF16; elsewhere torch's own check); without it,
oneDNN emulates bf16 slower than fp32 runs, so it is refused with the flag missing
and the way out. `fp16` is refused on a CPU: CPU float16 kernels are slow and it
would need loss scaling for no gain. Under CPU bf16 the recurrent layers run torch's
kernels (oneDNN's LSTM in bf16 with fp32 accumulation; GRU and simple RNN steps as
bf16 products), not rnnc's fp32 time loop (cpu/policy.py `applies`), and batches are
sharded across threads as in fp32, each thread under autocast (`in_autocast`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from rnnc.errors import UsageError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of native bf16 arithmetic
CPUINFO = Path("/proc/cpuinfo")

F = TypeVar("F", bound=Callable[..., Any])


def cpu_bf16_flags(cpuinfo: Path | None = None) -> list[str] | None:
    """The `BF16_FLAGS` the first CPU of `cpuinfo` lists, or None where there is no such file."""
    cpuinfo = CPUINFO if cpuinfo is None else cpuinfo
    if not cpuinfo.exists():
        return None
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.read_text().splitlines() if line.startswith("flags")), [])
    return [flag for flag in BF16_FLAGS if flag in flags]


def check_cpu_bf16() -> None:
    """Refuses bf16 training on a CPU without native bf16 arithmetic (one line: the flags
    missing and the fallback)."""
    flags = cpu_bf16_flags()
    if flags is None:  # no /proc/cpuinfo: torch's own check (oneDNN's)
        mkldnn = getattr(torch.ops, "mkldnn", None)
        native = bool(mkldnn is not None and hasattr(mkldnn, "_is_mkldnn_bf16_supported") and mkldnn._is_mkldnn_bf16_supported())
        if not native:
            raise UsageError("training.precision bf16 needs a CPU with native bf16 (torch reports none on this one); "
                             "use training.precision: fp32 (--set training.precision=fp32)")
        return
    if not flags:
        raise UsageError(f"training.precision bf16 needs a CPU with native bf16 (no {' or '.join(BF16_FLAGS)} in "
                         f"{CPUINFO}); use training.precision: fp32 (--set training.precision=fp32)")


class Precision:
    """The autocast context and, for fp16, the gradient scaler of one run."""

    def __init__(self, name: str, device: torch.device):
        self.name = name
        if name != "fp32" and name not in DTYPES:
            raise UsageError(f"training.precision: expected fp32, bf16 or fp16, got '{name}'")
        if name == "fp16" and device.type != "cuda":
            raise UsageError("training.precision fp16 needs a CUDA device; on a CPU use bf16 or fp32 (--set training.precision=bf16)")
        if name == "bf16" and device.type == "cpu":
            check_cpu_bf16()
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler(device.type) if name == "fp16" else None
        self.plain = self.scaler is None  # backward and step as written, no scaling

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The context the forward pass and the loss run in (a no-op for fp32)."""
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=DTYPES[self.name])

    def in_autocast(self, fn: F) -> F:
        """`fn` run inside `autocast()` (for the shards' threads: autocast state is per thread)."""
        if self.name == "fp32":
            return fn

        @functools.wraps(fn)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            with self.autocast():
                return fn(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, clip: Callable[[], Any] | None) -> None:
        """backward, optional clipping (on the true, unscaled gradients), and the step."""
        scaler = self.scaler
        if scaler is None:
            loss.backward()
            if clip is not None:
                clip()
            optimizer.step()
            return
        scaler.scale(loss).backward()
        if clip is not None:
            scaler.unscale_(optimizer)
            clip()
        scaler.step(optimizer)
        scaler.update()

    def state_dict(self) -> dict[str, Any] | None:
        return None if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
