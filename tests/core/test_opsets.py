"""The opsets a spec may ask for are the opsets the ONNX backend writes: one fact.

`rnnc.ir.EXPORT_OPSETS` declares them; the hand-written schema's `export.opset` bounds
must equal it (so `rnnc check` refuses, at its position, an opset the exporter would
refuse only after training), and the ONNX backend reads the same constant.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnc import ir
from rnnc.cli import main
from rnnc.schema import load_schema

SPEC = """\
rnnc: 1
name: opsets
input: {{shape: [10, 1]}}
layers:
  - {{type: simple_rnn, units: 4}}
  - {{type: dense, units: 1, activation: sigmoid}}
loss: binary_crossentropy
optimizer: adam
export:
  opset: {opset}
"""


def test_schema_bounds_are_the_exporter_opsets() -> None:
    opset = load_schema()["$defs"]["export"]["properties"]["opset"]
    assert range(opset["minimum"], opset["maximum"] + 1) == ir.EXPORT_OPSETS
    assert opset["default"] == ir.Export().opset in ir.EXPORT_OPSETS


def test_onnx_backend_reads_the_core_constant() -> None:
    lower = pytest.importorskip("rnnc_onnx.lower")
    assert lower.OPSETS is ir.EXPORT_OPSETS


# (opset, exit status, stderr)
CASES = [
    (ir.EXPORT_OPSETS.start - 2, 2, "{spec}:10:10: export.opset: expected an integer >= 18 and <= 23, got 16"),
    (ir.EXPORT_OPSETS.start, 0, ""),
    (ir.EXPORT_OPSETS.stop - 1, 0, ""),
    (ir.EXPORT_OPSETS.stop, 2, "{spec}:10:10: export.opset: expected an integer >= 18 and <= 23, got 24"),
]


@pytest.mark.parametrize(("opset", "status", "err"), CASES, ids=[str(c[0]) for c in CASES])
def test_check_refuses_an_opset_the_exporter_cannot_write(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          opset: int, status: int, err: str) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(opset=opset))
    assert main(["check", str(spec)]) == status
    assert capsys.readouterr().err.strip() == err.format(spec=spec)
