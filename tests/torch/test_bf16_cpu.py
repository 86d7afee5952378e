"""training.precision: bf16 on a CPU: refused in one line where the CPU lacks native bf16
(the flag and the fallback named), and where it has it, training computes the recurrent
layer in bf16, also on the shards' threads, and keeps float32 weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import binary_data, tiny_model

from rnnc import ir
from rnnc.data import from_arrays
from rnnc.errors import UsageError
from rnnc_torch import precision
from rnnc_torch.fit import fit
from rnnc_torch.trainer import Trainer

FLAGS = "flags\t\t: fpu sse2 avx2 avx512f {extra}\n"
native = pytest.mark.skipif(not precision.cpu_bf16_flags(), reason="this CPU has no native bf16")


def _cpuinfo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Test CPU\n" + FLAGS.format(extra=extra))
    monkeypatch.setattr(precision, "CPUINFO", info)


def test_a_cpu_without_native_bf16_is_refused_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _cpuinfo(tmp_path, monkeypatch, "avx512_vnni")
    with pytest.raises(UsageError) as raised:
        Trainer(tiny_model(precision="bf16"), "cpu")
    message = str(raised.value)
    assert message == (f"training.precision bf16 needs a CPU with native bf16 (no avx512_bf16 or amx_bf16 in {tmp_path / 'cpuinfo'}); "
                       "use training.precision: fp32 (--set training.precision=fp32)")
    Trainer(tiny_model(precision="fp32"), "cpu")  # the fallback it names runs


@pytest.mark.parametrize("flag", ["avx512_bf16", "amx_bf16"])
def test_either_flag_is_native_bf16(flag: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _cpuinfo(tmp_path, monkeypatch, flag)
    assert precision.cpu_bf16_flags() == [flag]
    Trainer(tiny_model(precision="bf16"), "cpu")


def test_without_cpuinfo_torchs_check_decides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "CPUINFO", tmp_path / "absent")
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    with pytest.raises(UsageError, match=r"^training.precision bf16 needs a CPU with native bf16 \(torch reports none"):
        Trainer(tiny_model(precision="bf16"), "cpu")


@native
@pytest.mark.parametrize("threads", [1, 2])
def test_bf16_training_runs_the_lstm_in_bf16_and_keeps_float32_weights(threads: int) -> None:
    """The recurrent layer's outputs are bf16 (on every shard's thread with two), the
    saved weights float32, and the loss close to fp32's."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        losses, seen = {}, []
        for name in ("fp32", "bf16"):
            model = tiny_model([ir.LSTM(units=64), ir.Dense(units=1, activation="sigmoid")], epochs=2, precision=name,
                               batch_size=64)
            trainer = Trainer(model, "cpu")
            assert trainer.shards == (threads if threads > 1 else 1)
            lstm = next(m for m in trainer.module.modules() if isinstance(m, torch.nn.LSTM))
            hook = lstm.register_forward_hook(lambda module, inputs, output: seen.append((name, output[0].dtype)))
            trainer.run(from_arrays(model, *binary_data(n=256)), progress=False)
            hook.remove()
            losses[name] = trainer.history[-1]["loss"]
            assert all(p.dtype == torch.float32 for p in trainer.module.parameters())
        assert {dtype for name, dtype in seen if name == "bf16"} == {torch.bfloat16}
        assert {dtype for name, dtype in seen if name == "fp32"} == {torch.float32}
        assert losses["bf16"] == pytest.approx(losses["fp32"], abs=0.02)
    finally:
        torch.set_num_threads(before)


@native
def test_bf16_training_is_deterministic_for_a_seed() -> None:
    weights = []
    for _ in range(2):
        model = tiny_model([ir.LSTM(units=16), ir.Dense(units=1, activation="sigmoid")], epochs=2, precision="bf16")
        history = fit(model, *binary_data(n=128), device="cpu", progress=False, verbose=False)
        weights.append(history.weights())
        assert all(w.dtype == np.float32 for w in history.weights().values())
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        np.testing.assert_array_equal(weights[0][key], weights[1][key])
