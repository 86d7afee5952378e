"""bench/step_floor.py's floors compute what they claim: the C matrix-vector kernels
against numpy (float32 to 1e-5, bfloat16 to its rounding), on weights packed as the
kernels read them, on AVX-512 or AVX2 (skipped, naming the flags, on a CPU with
neither), and the one-node LSTM graph it times against a numpy LSTM."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
_spec = importlib.util.spec_from_file_location("bench_step_floor", BENCH / "step_floor.py")
assert _spec and _spec.loader
step_floor = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(step_floor)

MISSING = step_floor.kernels_missing()  # e.g. no avx512f, nor avx2 and fma, in /proc/cpuinfo
needs_kernels = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")


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


@needs_kernels
@pytest.mark.parametrize("units", [32, 128, 256])
def test_float32_matvec_is_h_times_r(so, units: int) -> None:
    r, h0, out = one_step(so, units, bf16=False)
    np.testing.assert_allclose(out, h0.astype(np.float64) @ r.astype(np.float64), rtol=1e-5, atol=1e-5)


@needs_kernels
def test_the_vectors_are_the_widest_the_cpu_has(so) -> None:
    flags = cpu_flags()
    assert so.vector_floats() == (16 if "avx512f" in flags else 8)


@needs_kernels
def test_the_fma_and_stream_floors_compute_their_sums(so) -> None:
    """The timed loops do the work they are counted as (12 x lanes FMAs, every float read)."""
    lanes = so.vector_floats()
    a = np.arange(12, dtype=np.float32)
    for _ in range(50):
        a = (a * np.float32(0.999) + np.float32(1e-3)).astype(np.float32)
    assert so.fma_peak(50) == pytest.approx(lanes * float(a.sum()), rel=1e-5)
    buf = step_floor.aligned(1024)
    buf[:] = np.arange(1024) % 7
    assert so.stream(buf.ctypes.data, buf.size, 3) == pytest.approx(3 * float(buf.sum()), rel=1e-6)


def cpu_flags() -> list[str]:
    info = Path("/proc/cpuinfo")
    text = info.read_text() if info.exists() else ""
    return next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])


@pytest.mark.parametrize(("flags", "missing"), [
    ("fpu sse2 avx avx2 fma", None), ("fpu sse2 avx2 avx512f", None),
    ("fpu sse2 avx", "needs a CPU with avx512f, or avx2 and fma"), ("fpu sse2 avx2", "needs a CPU with avx512f, or avx2 and fma"),
])
def test_a_cpu_without_the_kernels_vectors_is_named(flags: str, missing: str | None, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    monkeypatch.setattr(step_floor.shutil, "which", lambda name: "/usr/bin/cc")
    reason = step_floor.kernels_missing(info)
    assert reason is None if missing is None else missing in reason
    monkeypatch.setattr(step_floor.shutil, "which", lambda name: None)
    assert "no C compiler" in step_floor.kernels_missing(info)


def bf16(a: np.ndarray) -> np.ndarray:
    """float32 rounded to bfloat16 (nearest even), as float32: an independent reference."""
    bits = a.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    return rounded.astype(np.uint32).view(np.float32)


@needs_kernels
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


# onnxruntime's int8 product (MLAS: activations uint8, weights int8) sums exactly in int32
# with VNNI (vpdpbusd); without it (AVX2, or AVX-512 before VNNI) it multiplies with
# vpmaddubsw, which adds each two adjacent uint8 x int8 products into a saturating int16
# (255 * 127 * 2 > 32767), so large activation-weight pairs clip. Measured on an AVX2 EPYC
# (no VNNI): 0.040 max, 0.0085 mean here, and 0.0027 max with 7-bit weights
# (`reduce_range`, where no pair can saturate): the excess over 0.02 is that clipping.
VNNI = ("avx512_vnni", "avx_vnni", "amx_int8")
INT8_ATOL = 0.02 if any(flag in cpu_flags() for flag in VNNI) else 0.06


def test_the_int8_graph_is_the_exporters_quantised_lstm() -> None:
    x, other = (np.random.default_rng(seed).normal(size=(20, 1, step_floor.FEATURES)).astype(np.float32) for seed in (0, 1))
    fp32, int8 = (step_floor.lstm_session(64, int8=q).run(["y"], {"x": x})[0] for q in (False, True))
    error = np.abs(int8 - fp32)
    assert 1e-6 < error.max() < INT8_ATOL  # quantised (not the float32 graph), and close to it on this CPU's int8 path
    unrelated = np.abs(step_floor.lstm_session(64).run(["y"], {"x": other})[0] - fp32).mean()  # 0.067
    assert error.mean() < unrelated / 4  # far closer to its float graph than another sequence's state is
