"""`training.precision`: automatic mixed precision for the training loop.

`fp32` (the default) runs as written. `bf16` and `fp16` run the forward pass and the
loss under `torch.autocast` (matrix products and recurrent kernels in the lower
precision, reductions and losses in float32; the parameters and the optimizer state
stay float32, so the saved weights are float32 either way). `fp16` has a narrow range,
so its gradients go through a `GradScaler` (scaled up before backward, unscaled before
clipping and the step, steps with inf/NaN gradients skipped). On a CPU, `bf16` uses
CPU autocast (correct everywhere; faster only on processors with bf16 units) and
`fp16` is refused: CPU float16 kernels are slow and it would need loss scaling for no
gain.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch

from rnnc.errors import UsageError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """The autocast context and, for fp16, the gradient scaler of one run."""

    def __init__(self, name: str, device: torch.device):
        self.name = name
        if name != "fp32" and name not in DTYPES:
            raise UsageError(f"training.precision: expected fp32, bf16 or fp16, got '{name}'")
        if name == "fp16" and device.type != "cuda":
            raise UsageError("training.precision fp16 needs a CUDA device; on a CPU use bf16 or fp32 (--set training.precision=bf16)")
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler(device.type) if name == "fp16" else None
        self.plain = self.scaler is None  # backward and step as written, no scaling

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The context the forward pass and the loss run in (a no-op for fp32)."""
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=DTYPES[self.name])

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
