"""The serve batcher: joined runs equal each request alone (real exported models),
max_batch and max_delay held, overload, drain on close, cancellation, failures kept apart."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from rnnc.serve.batcher import Batcher, Overloaded
from rnnc.serve.metrics import ServeMetrics
from rnnc.serve.models import ServedModel

FEATURES = 3


def _sequences(rng: np.random.Generator, steps: list[int], rows: int = 1) -> list[dict[str, np.ndarray]]:
    return [{"x": rng.standard_normal((rows, t, FEATURES)).astype(np.float32)} for t in steps]


async def _all(batcher: Batcher, feeds: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    await batcher.start()
    try:
        return list(await asyncio.gather(*(batcher.submit(f) for f in feeds)))
    finally:
        await batcher.close()


@pytest.mark.parametrize("name", ["moods", "steps"])
def test_joined_runs_equal_each_request_alone(model_files: dict[str, Path], name: str) -> None:
    model = ServedModel.open(model_files[name])
    assert model.lengths_of == {"x": "lengths"}
    rng = np.random.default_rng(0)
    feeds = _sequences(rng, [2, 7, 4, 9, 1, 5], rows=2) + _sequences(rng, [3, 8])
    alone = [model.predictor.run(f["x"]) for f in feeds]
    for order in (list(range(len(feeds))), list(reversed(range(len(feeds)))), [3, 0, 7, 5, 1, 6, 2, 4]):
        batcher = Batcher.for_model(model, max_batch=32, max_delay_ms=50, max_queue=64)
        got = asyncio.run(_all(batcher, [feeds[i] for i in order]))
        assert batcher.runs < len(feeds)  # requests really shared runs
        for i, out in zip(order, got, strict=True):
            assert out["y"].shape == alone[i].shape
            np.testing.assert_allclose(out["y"], alone[i], atol=1e-6, rtol=0)


def test_graph_requests_joined_equal_alone(model_files: dict[str, Path]) -> None:
    model = ServedModel.open(model_files["churn"])
    rng = np.random.default_rng(1)
    feeds = [{"events": rng.standard_normal((1, t, FEATURES)).astype(np.float32),
              "profile": rng.standard_normal((1, 2)).astype(np.float32)} for t in (3, 6, 1, 4)]
    alone = [model.run(f) for f in feeds]
    batcher = Batcher.for_model(model, max_batch=8, max_delay_ms=50, max_queue=16)
    got = asyncio.run(_all(batcher, feeds))
    assert batcher.runs == 1
    for out, want in zip(got, alone, strict=True):
        assert set(out) == set(want)
        for n in want:
            np.testing.assert_allclose(out[n], want[n], atol=1e-6, rtol=0)


class Recorder:
    """A fake model: y = x * 2, recording the rows of every run; `gate` holds runs."""

    def __init__(self) -> None:
        self.rows: list[int] = []
        self.seen: list[np.ndarray] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.gate.wait(5)
        x = feeds["x"]
        if (x < 0).any():
            raise ValueError("negative input")
        self.rows.append(len(x))
        self.seen.append(x)
        return {"y": x * 2}


def _row(v: float) -> dict[str, np.ndarray]:
    return {"x": np.full((1, 2), v, dtype=np.float32)}


def test_max_batch_bounds_every_run() -> None:
    rec = Recorder()
    batcher = Batcher(rec, max_batch=3, max_delay_ms=30, max_queue=100)
    got = asyncio.run(_all(batcher, [_row(i) for i in range(10)]))
    assert rec.rows == [3, 3, 3, 1]
    assert [float(g["y"][0, 0]) for g in got] == [2.0 * i for i in range(10)]
    one = Recorder()
    asyncio.run(_all(Batcher(one, max_batch=1, max_delay_ms=30, max_queue=100), [_row(i) for i in range(4)]))
    assert one.rows == [1, 1, 1, 1]


def test_lone_request_waits_about_max_delay() -> None:
    async def timed(delay_ms: float) -> float:
        batcher = Batcher(Recorder(), max_batch=8, max_delay_ms=delay_ms, max_queue=8)
        await batcher.start()
        began = time.perf_counter()
        await batcher.submit(_row(1))
        took = time.perf_counter() - began
        await batcher.close()
        return took

    assert 0.07 <= asyncio.run(timed(80)) < 0.3
    assert asyncio.run(timed(0)) < 0.05


def test_full_queue_overloads_then_drains_on_close() -> None:
    rec = Recorder()
    metrics = ServeMetrics()

    async def scenario() -> list[dict[str, np.ndarray]]:
        rec.gate.clear()
        batcher = Batcher(rec, max_batch=1, max_delay_ms=0, max_queue=3, metrics=metrics, model="m")
        await batcher.start()
        running = asyncio.ensure_future(batcher.submit(_row(1)))
        await asyncio.sleep(0.05)  # taken: now running, held at the gate
        queued = [asyncio.ensure_future(batcher.submit(_row(v))) for v in (2, 3)]
        await asyncio.sleep(0.01)
        assert batcher.depth == 2
        assert metrics.queue_depth.labels(model="m")._value.get() == 2
        with pytest.raises(Overloaded, match="3 requests waiting"):
            await batcher.submit(_row(4))
        closing = asyncio.ensure_future(batcher.close())
        await asyncio.sleep(0.01)
        with pytest.raises(Overloaded, match="shutting down"):
            await batcher.submit(_row(5))
        rec.gate.set()
        await closing
        return [await running, *[await q for q in queued]]

    got = asyncio.run(scenario())
    assert [float(g["y"][0, 0]) for g in got] == [2.0, 4.0, 6.0]
    assert rec.rows == [1, 1, 1]


def test_cancelled_request_is_dropped_before_its_run() -> None:
    rec = Recorder()

    async def scenario() -> None:
        rec.gate.clear()
        batcher = Batcher(rec, max_batch=4, max_delay_ms=0, max_queue=8)
        await batcher.start()
        first = asyncio.ensure_future(batcher.submit(_row(1)))
        await asyncio.sleep(0.05)
        gone = asyncio.ensure_future(batcher.submit(_row(7)))
        kept = asyncio.ensure_future(batcher.submit(_row(3)))
        await asyncio.sleep(0.01)
        gone.cancel()
        await asyncio.sleep(0.01)
        assert batcher.depth == 1
        rec.gate.set()
        assert float((await kept)["y"][0, 0]) == 6.0
        await first
        await batcher.close()

    asyncio.run(scenario())
    assert not any((x == 7).any() for x in rec.seen)
    assert rec.rows == [1, 1]


def test_a_failing_request_does_not_fail_its_batch() -> None:
    rec = Recorder()

    async def scenario() -> list[object]:
        batcher = Batcher(rec, max_batch=8, max_delay_ms=30, max_queue=8)
        await batcher.start()
        got = await asyncio.gather(*(batcher.submit(_row(v)) for v in (1, -1, 2)), return_exceptions=True)
        await batcher.close()
        return got

    good, bad, other = asyncio.run(scenario())
    assert isinstance(bad, ValueError)
    assert float(good["y"][0, 0]) == 2.0 and float(other["y"][0, 0]) == 4.0  # type: ignore[index]


def test_one_batcher_serves_one_event_loop_after_another() -> None:
    rec = Recorder()
    batcher = Batcher(rec, max_batch=4, max_delay_ms=10, max_queue=8)
    for v in (1.0, 2.0):  # as Starlette's TestClient does: a fresh loop per request
        assert float(asyncio.run(batcher.submit(_row(v)))["y"][0, 0]) == 2 * v
    assert rec.rows == [1, 1]


def _exported(tmp_path: Path, mapping: dict) -> ServedModel:
    from rnnc.initial import initial_weights
    from rnnc.spec import model_from_mapping

    rnnc_onnx = pytest.importorskip("rnnc_onnx")
    model = model_from_mapping(mapping)
    path = tmp_path / f"{mapping['name']}.onnx"
    rnnc_onnx.export(model, initial_weights(model, seed=5), path)
    return ServedModel.open(path)


def _joined_equal_alone(model: ServedModel, feeds: list[dict[str, np.ndarray]]) -> Batcher:
    alone = [model.run(f) for f in feeds]
    batcher = Batcher.for_model(model, max_batch=16, max_delay_ms=50, max_queue=16)
    got = asyncio.run(_all(batcher, feeds))
    for out, want in zip(got, alone, strict=True):
        assert set(out) == set(want)
        for n in want:
            assert out[n].shape == want[n].shape, n
            np.testing.assert_allclose(out[n], want[n], atol=1e-6, rtol=0)
    return batcher


def test_per_step_outputs_of_two_sequence_inputs_are_cut_to_their_own_steps(tmp_path: Path) -> None:
    model = _exported(tmp_path, {
        "rnnc": 2, "name": "pair", "optimizer": "adam",
        "inputs": {"a": {"shape": [None, FEATURES]}, "b": {"shape": [None, FEATURES]}},
        "layers": [{"name": "ha", "type": "gru", "units": 4, "return_sequences": True, "input": "a"},
                   {"name": "hb", "type": "lstm", "units": 3, "return_sequences": True, "input": "b"},
                   {"name": "ya", "type": "dense", "units": 2, "input": "ha"},
                   {"name": "yb", "type": "dense", "units": 2, "input": "hb"}],
        "outputs": {"ya": {"loss": "mse"}, "yb": {"loss": "mse"}}})
    assert model.steps_of == {"ya": "a", "yb": "b"} and model.pads
    rng = np.random.default_rng(2)
    feeds = [{"a": rng.standard_normal((1, ta, FEATURES)).astype(np.float32),
              "b": rng.standard_normal((1, tb, FEATURES)).astype(np.float32)} for ta, tb in ((2, 7), (6, 1), (4, 4))]
    assert _joined_equal_alone(model, feeds).runs == 1


def test_a_convolution_that_changes_steps_keeps_lengths_apart(tmp_path: Path) -> None:
    model = _exported(tmp_path, {
        "rnnc": 1, "name": "conv", "optimizer": "adam", "loss": "mse", "input": {"shape": [None, FEATURES]},
        "layers": [{"type": "conv1d", "filters": 4, "kernel_size": 3, "padding": "valid"},
                   {"type": "gru", "units": 3, "return_sequences": True}, {"type": "dense", "units": 1}]})
    assert not model.pads
    rng = np.random.default_rng(3)
    feeds = [{"x": rng.standard_normal((1, t, FEATURES)).astype(np.float32)} for t in (5, 9, 5, 7)]
    assert _joined_equal_alone(model, feeds).runs == 3  # only the two of 5 steps share a run
