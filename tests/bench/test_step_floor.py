"""bench/step_floor.py's floors compute what they claim: the C matrix-vector kernels
against numpy (float32 to 1e-5, bfloat16 to its rounding), on weights packed as the
kernels read them, and the one-node LSTM graph it times against a numpy LSTM."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
_spec = importlib.util.spec_from_file_location("bench_step_floor", BENCH / "step_floor.py")
assert _spec and _spec.loader
step_floor = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(step_floor)

needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")


@pytest.fixture(scope="module")
def so(tmp_path_factory: pytest.TempPathFactory):
    lib = step_floor.kernels(tmp_path_factory.mktemp("kernels"))
    assert lib is not None
    return lib


def one_step(so, units: int, bf16: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r = np.random.default_rng(units).uniform(-1, 1, (units, 4 * units)).astype(np.float32)
    h0 = np.random.default_rng(1).uniform(-1, 1, units).astype(np.float32)
    packed, h, out = step_floor.pack(r, bf16), step_floor.aligned(units), step_floor.aligned(4 * units)
    h[:] = h0
    (so.matvec_bf16 if bf16 else so.matvec)(packed.ctypes.data, h.ctypes.data, out.ctypes.data, units, 4 * units, 1)
    return r, h0, out


@needs_cc
@pytest.mark.parametrize("units", [32, 128, 256])
def test_float32_matvec_is_h_times_r(so, units: int) -> None:
    r, h0, out = one_step(so, units, bf16=False)
    np.testing.assert_allclose(out, h0.astype(np.float64) @ r.astype(np.float64), rtol=1e-5, atol=1e-5)


def bf16(a: np.ndarray) -> np.ndarray:
    """float32 rounded to bfloat16 (nearest even), as float32: an independent reference."""
    bits = a.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    return rounded.astype(np.uint32).view(np.float32)


@needs_cc
@pytest.mark.parametrize("units", [32, 128])
def test_bf16_matvec_is_the_rounded_product(so, units: int) -> None:
    if not so.has_bf16():
        pytest.skip("CPU without AVX512_BF16")
    r, h0, out = one_step(so, units, bf16=True)
    expected = bf16(h0).astype(np.float64) @ bf16(r).astype(np.float64)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)
    assert np.abs(out - h0 @ r).max() > 1e-6  # it did round: not the float32 product


def test_the_timed_lstm_graph_is_an_lstm() -> None:
    session = step_floor.lstm_session(32)
    x = np.random.default_rng(0).normal(size=(5, 2, step_floor.FEATURES)).astype(np.float32)
    got = session.run(["y"], {"x": x})[0][0]
    rng = np.random.default_rng(0)  # the same draws as lstm_session
    scale = 1 / np.sqrt(32)
    w, r = rng.uniform(-scale, scale, (4 * 32, step_floor.FEATURES)), rng.uniform(-scale, scale, (4 * 32, 32))
    b = rng.uniform(-scale, scale, 8 * 32)
    h, c = np.zeros((2, 32)), np.zeros((2, 32))
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    for t in range(5):
        gates = x[t] @ w.T + h @ r.T + b[:128] + b[128:]
        i, o, f, g = np.split(gates, 4, axis=1)  # ONNX's gate order
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
    np.testing.assert_allclose(got, h, rtol=1e-5, atol=1e-5)


def test_the_int8_graph_is_the_exporters_quantised_lstm() -> None:
    x = np.random.default_rng(0).normal(size=(20, 1, step_floor.FEATURES)).astype(np.float32)
    fp32, int8 = (step_floor.lstm_session(64, int8=q).run(["y"], {"x": x})[0] for q in (False, True))
    error = np.abs(int8 - fp32).max()
    assert 1e-6 < error < 0.02  # quantised (not the float32 graph), and close to it
