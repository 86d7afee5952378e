"""`rnnc compile` of a graph (spec v2): class names by output, from the weights or from
`--classes OUTPUT=A,B`, and the torch backend's refusal of a `.pt2` for a graph."""

from __future__ import annotations

import json
from pathlib import Path

import onnxruntime as ort
import pytest

from rnnc.cli import main

SPEC = """\
rnnc: 2
name: two-heads
inputs:
  seq: {shape: [null, 3]}
layers:
  - {name: enc, type: gru, units: 4, input: seq}
  - {name: kind, type: dense, units: 3, activation: softmax, input: enc}
  - {name: level, type: dense, units: 1, input: enc}
outputs:
  kind: {loss: sparse_categorical_crossentropy}
  level: {loss: mse}
optimizer: adam
"""


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    return path


def _outputs(path: Path) -> dict[str, dict]:
    meta = ort.InferenceSession(str(path)).get_modelmeta().custom_metadata_map
    return {o["name"]: o for o in json.loads(meta["graph"])["outputs"]}


def test_classes_are_given_by_output(spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.onnx"
    assert main(["compile", str(spec), "--classes", "kind=a,b,c", "-o", str(out)]) == 0
    outputs = _outputs(out)
    assert outputs["kind"]["classes"] == ["a", "b", "c"]
    assert "classes" not in outputs["level"]


@pytest.mark.parametrize(("given", "message"), [
    (["a,b,c"], "--classes a,b,c: this graph has outputs kind, level; name the output: --classes OUTPUT=A,B,..."),
    (["kinds=a,b,c"], "--classes kinds=a,b,c: no output is named 'kinds'; outputs: kind, level"),
    (["kind=a,b"], "output kind: 2 class names given, the model's output has 3 classes"),
])
def test_bad_classes_are_one_line_and_nothing_is_written(
    spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], given: list[str], message: str
) -> None:
    out = tmp_path / "m.onnx"
    args = [a for g in given for a in ("--classes", g)]
    assert main(["compile", str(spec), *args, "-o", str(out)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(message)
    assert not out.exists()


def test_the_torch_backend_refuses_a_graph(spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.pt2"
    assert main(["compile", str(spec), "--backend", "torch", "-o", str(out)]) == 2
    assert "a graph (spec version 2) exports to ONNX only, for now: use --backend onnx" in capsys.readouterr().err
    assert not out.exists()
