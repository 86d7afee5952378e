"""Parity for graphs (spec version 2): the same IR and weights through the torch backend's
`GraphModule` and through onnxruntime agree to 1e-5, output by output.

The graphs of `export_cases` hold every new kind and option, initial state across two
variable-length inputs for each recurrent kind, several inputs and outputs, and the
examples of DESIGN.md; each runs at batch 1, 3 and 17 and 1, 7 and 50 steps, with
random lengths (some 0) and junk in the padding. One session and one module per graph.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("rnnc_torch.graph")

import rnnc_torch  # noqa: E402
from export_cases import GRAPHS, SIZES, STREAMING, draw, random_weights, run, session  # noqa: E402

from rnnc import ir  # noqa: E402

TOLERANCE = 1e-5
CASES = {**GRAPHS, "streaming_graph_whole": dataclasses.replace(STREAMING, export=ir.Export())}


@pytest.mark.parametrize("name", list(CASES))
def test_onnxruntime_matches_torch(name: str) -> None:
    model = CASES[name]
    weights = random_weights(model, seed=1)
    module = rnnc_torch.build_module(model).eval()
    module.load_ir_state(weights)
    sess = session(model, weights)
    rng = np.random.default_rng(2)
    for batch, steps in SIZES:
        inputs, lengths = draw(model, batch, steps, rng)
        got = run(sess, inputs, lengths)
        with torch.inference_mode():
            want = module({k: torch.from_numpy(v) for k, v in inputs.items()}, {k: torch.from_numpy(v) for k, v in lengths.items()})
        assert list(got) == list(want) == [o.name for o in model.outputs]
        for output, value in want.items():
            expected = value.numpy()
            assert got[output].shape == expected.shape, (output, batch, steps)
            diff = float(np.abs(got[output] - expected).max()) if expected.size else 0.0
            assert diff <= TOLERANCE, f"{output} at batch {batch}, {steps} steps: max abs diff {diff:.2e}"
