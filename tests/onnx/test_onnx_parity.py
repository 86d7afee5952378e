"""Parity: the same IR and weights through the torch backend and through onnxruntime.

For every case in the table, at batch sizes 1, 3 and 17 and sequence lengths 1, 7 and
50 (random lengths in [1, T] for variable-length models), the outputs agree to 1e-5.
One onnxruntime session per model, reused across shapes, keeps this fast.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
rnnc_torch = pytest.importorskip("rnnc_torch")

from onnx_cases import BATCHES, CASES, STEPS, Case, inputs, random_weights, session  # noqa: E402

from rnnc.runtime import lengths_from_ids  # noqa: E402

TOLERANCE = 1e-5


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_onnxruntime_matches_torch(case: Case) -> None:
    model = case.model()
    weights = random_weights(model)
    module = rnnc_torch.build_module(model)
    module.load_ir_state(weights)
    module.eval()
    sess = session(model, weights)
    rng = np.random.default_rng(1)
    for batch in BATCHES:
        for steps in STEPS:
            if steps < case.min_steps:
                continue
            x, lengths = inputs(case, batch, steps, rng)
            feed = {"x": x} if lengths is None else {"x": x, "lengths": lengths}
            if lengths is None and model.variable_length:  # mask_zero: lengths from the ids
                feed["lengths"] = lengths_from_ids(x)
            got = sess.run(["y"], feed)[0]
            with torch.inference_mode():
                want = module(torch.from_numpy(x), None if lengths is None else torch.from_numpy(lengths)).numpy()
            assert got.shape == want.shape, (batch, steps)
            diff = float(np.abs(got - want).max()) if got.size else 0.0
            assert diff <= TOLERANCE, f"batch {batch}, steps {steps}: max abs diff {diff:.2e}"
