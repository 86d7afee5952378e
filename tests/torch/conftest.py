"""Fixtures for the torch backend tests: IR models built by hand from layer lists.

The tests build `ir.Model` objects directly (through `rnnc.shapes.infer_nodes`), so
they test the backend, not the YAML loader.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

torch = pytest.importorskip("torch")

from rnnc import ir  # noqa: E402
from rnnc.shapes import infer_nodes  # noqa: E402

MakeModel = Callable[..., ir.Model]


def make_model(layers: Sequence[ir.Layer], shape: tuple[int | None, ...] = (None, 3), dtype: str = "float32") -> ir.Model:
    """An IR model for `layers` on input `shape` ([timesteps, features] or [timesteps])."""
    input_ = ir.Input(shape=tuple(shape), dtype=dtype)  # type: ignore[arg-type]
    nodes, problems = infer_nodes(input_, list(layers))
    assert not problems, problems
    return ir.Model(
        name="test",
        input=input_,
        nodes=tuple(nodes),
        loss=ir.Loss("mse"),
        optimizer=ir.Optimizer("adam"),
    )


@pytest.fixture(name="make_model")
def make_model_fixture() -> MakeModel:
    return make_model


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)
