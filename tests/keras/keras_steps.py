"""The steps from a Keras file to rnnc's predictions, for tests/keras/: `rnnc import`,
`rnnc compile --backend onnx`, rnnc.runtime, and the comparison with Keras's outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def rnnc(*args: str) -> tuple[int, str]:
    """`rnnc ARGS` in this process: (exit status, stderr)."""
    import contextlib
    import io

    from rnnc.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status = main(list(args))
    return status, err.getvalue()


def rnnc_predict(model_file: Path, out_dir: Path, inputs: dict[str, np.ndarray], edit=None) -> dict[str, np.ndarray]:
    """Import, compile to ONNX, predict with rnnc.runtime: one array per output name
    (`y` for a version 1 chain). `edit` rewrites the imported spec's text first."""
    from rnnc import runtime

    status, err = rnnc("import", str(model_file), "-o", str(out_dir))
    assert status == 0, err
    if edit is not None:
        spec = out_dir / "spec.yaml"
        spec.write_text(edit(spec.read_text()))
    onnx = out_dir / "model.onnx"
    status, err = rnnc("compile", str(out_dir / "spec.yaml"), "--backend", "onnx", "--weights",
                       str(out_dir / "weights.safetensors"), "-o", str(onnx))
    assert status == 0, err
    model = runtime.load(onnx)
    arrays = {k: v for k, v in inputs.items() if not k.endswith("_lengths")}
    if isinstance(model, runtime.Predictor):
        return {"y": model.predict(arrays["x"] if "x" in arrays else next(iter(arrays.values())))}
    return dict(model.predict(arrays))


def real_steps(keras_out: np.ndarray, ours: np.ndarray, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Both outputs at the real steps only (per-step outputs of a masked input: what
    Keras and rnnc give at padded steps is no one's prediction)."""
    given = [v for k, v in inputs.items() if k.endswith("_lengths")]
    if not given or keras_out.ndim < 3:
        return keras_out, ours
    lengths = np.min(given, axis=0)  # several masked inputs: the steps real in every one
    keep = np.arange(keras_out.shape[1])[None, :] < lengths[:, None]
    return keras_out[keep], ours[keep]


def max_diff(case: str, folder: Path, model_file: Path, out_dir: Path, edit=None) -> float:
    """rnnc's predictions against Keras's on the case's inputs: the largest absolute difference."""
    inputs = dict(np.load(folder / f"{case}.inputs.npz"))
    expected = dict(np.load(folder / f"{case}.keras_out.npz"))
    ours = rnnc_predict(model_file, out_dir, inputs, edit)
    if set(ours) == {"y"}:
        (only,) = expected.values()
        expected = {"y": only}
    assert set(ours) == set(expected), (sorted(ours), sorted(expected))
    worst = 0.0
    for name, want in expected.items():
        want, got = real_steps(want, ours[name], inputs)
        assert want.shape == got.shape, (name, want.shape, got.shape)
        worst = max(worst, float(np.abs(want - got).max()))
    return worst
