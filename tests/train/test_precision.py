"""`training.precision`: fp32 as written, bf16 autocast (CPU and CUDA), fp16 autocast
with a gradient scaler (CUDA only, refused on a CPU); weights stay float32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import binary_data, tiny_model

from rnnc import ir
from rnnc.data import from_arrays
from rnnc.errors import UsageError
from rnnc_torch import precision as precisions
from rnnc_torch.checkpoint import load_checkpoint, save_checkpoint
from rnnc_torch.fit import fit
from rnnc_torch.trainer import Trainer

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def cpu_bf16_refusal() -> str | None:
    """rnnc's own refusal of CPU bf16 on this machine (precision.check_cpu_bf16: no
    avx512_bf16 or amx_bf16 in /proc/cpuinfo, or torch's check without it), or None."""
    try:
        precisions.check_cpu_bf16()
    except UsageError as refused:
        return str(refused)
    return None


REFUSAL = cpu_bf16_refusal()
native_bf16 = pytest.mark.skipif(REFUSAL is not None, reason=f"this CPU has no native bf16 ({' or '.join(precisions.BF16_FLAGS)})")


def test_bf16_on_this_cpu_runs_or_is_refused_in_one_line() -> None:
    """Either branch on the machine at hand (tests/torch/test_bf16_cpu.py fakes both)."""
    model = tiny_model(precision="bf16")
    if REFUSAL is None:
        Trainer(model, "cpu")
        return
    with pytest.raises(UsageError) as raised:
        Trainer(model, "cpu")
    assert str(raised.value) == REFUSAL
    assert "\n" not in REFUSAL
    assert REFUSAL.startswith("training.precision bf16 needs a CPU with native bf16 (")
    assert REFUSAL.endswith("; use training.precision: fp32 (--set training.precision=fp32)")


def test_fp16_on_cpu_is_refused() -> None:
    with pytest.raises(UsageError, match="training.precision fp16 needs a CUDA device; on a CPU use bf16 or fp32"):
        Trainer(tiny_model(precision="fp16"), "cpu")


@pytest.mark.parametrize(("precision", "dtype"), [pytest.param("bf16", torch.bfloat16, marks=native_bf16), ("fp32", torch.float32)])
def test_the_training_step_runs_its_dense_layers_in_the_chosen_precision(precision: str, dtype: torch.dtype) -> None:
    """Autocast really covers the forward pass (close losses alone would not show it)."""
    model = tiny_model([ir.GRU(units=8), ir.Dense(units=1, activation="sigmoid")], precision=precision)
    trainer = Trainer(model, "cpu")
    seen: list[torch.dtype] = []
    dense = next(m for m in trainer.module.modules() if isinstance(m, torch.nn.Linear))
    dense.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    x, y = binary_data(32)
    trainer.run(from_arrays(model, x, y), progress=False)
    assert seen and set(seen) == {dtype}
    assert all(p.dtype == torch.float32 for p in trainer.module.parameters())  # the weights stay float32


@native_bf16
@pytest.mark.parametrize("layer", [ir.SimpleRNN(units=8), ir.LSTM(units=8), ir.GRU(units=8)], ids=lambda layer: type(layer).__name__)
def test_bf16_on_cpu_trains_close_to_fp32(layer: ir.Layer) -> None:
    losses = {}
    for precision in ("fp32", "bf16"):
        model = tiny_model([layer, ir.Dense(units=1, activation="sigmoid")], epochs=2, precision=precision)
        history = fit(model, *binary_data(n=128), device="cpu", progress=False, verbose=False)
        assert all(w.dtype == np.float32 for w in history.weights().values())
        losses[precision] = history[-1]["loss"]
    assert losses["bf16"] == pytest.approx(losses["fp32"], abs=0.02)


@cuda
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_on_cuda_learns(precision: str) -> None:
    model = tiny_model([ir.LSTM(units=16), ir.Dense(units=1, activation="sigmoid")], epochs=6, precision=precision,
                       gradient_clip=1.0, metrics=("accuracy",))
    history = fit(model, *binary_data(n=512), validation=binary_data(n=128, seed=1), device="cuda", progress=False, verbose=False)
    assert history[-1]["val_accuracy"] > 0.8
    assert all(w.dtype == np.float32 for w in history.weights().values())


@cuda
def test_fp16_checkpoint_keeps_the_gradient_scaler(tmp_path: Path) -> None:
    model = tiny_model([ir.GRU(units=8), ir.Dense(units=1, activation="sigmoid")], epochs=2, precision="fp16")
    trainer = Trainer(model, "cuda")
    trainer.run(from_arrays(model, *binary_data()), progress=False)
    save_checkpoint(tmp_path / "c.pt", trainer.state_dict(), "fp")
    state = load_checkpoint(tmp_path / "c.pt", "fp")
    assert state["scaler"]["scale"] == trainer.precision.scaler.get_scale()
    resumed = Trainer(model, "cuda")
    resumed.load_state_dict(state)
    assert resumed.precision.scaler.get_scale() == trainer.precision.scaler.get_scale()
