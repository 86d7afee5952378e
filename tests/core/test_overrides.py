"""`--set key=null` removes the key: no setting takes null, so it can only mean "as
if it were not written". List entries still take null (`input.shape.0=null`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rnnc import ir
from rnnc.loader import load_text
from rnnc.overrides import apply_overrides
from rnnc.spec import model_from_text

SPEC = """\
rnnc: 1
name: nulls
input: {shape: [10, 1]}
layers:
  - {type: lstm, units: 8, dropout: 0.2}
  - {type: dense, units: 1, activation: sigmoid}
loss: binary_crossentropy
optimizer: {type: adam, lr: 0.01}
training:
  early_stopping: {monitor: val_loss, patience: 2}
  lr_schedule: {type: cosine}
data:
  train: train.npz
  validation: val.npz
"""


@pytest.fixture
def base(tmp_path: Path) -> Path:
    for name in ("train.npz", "val.npz"):
        (tmp_path / name).touch()  # the spec's rules ask only that they exist
    return tmp_path


@pytest.mark.parametrize(
    ("overrides", "check"),
    [
        (["data.validation=null", "training.validation_split=0.2"],
         lambda m: m.data.validation is None and m.training.validation_split == 0.2),
        (["training.early_stopping=null"], lambda m: m.training.early_stopping is None),
        (["training.lr_schedule=~"], lambda m: m.training.lr_schedule is None),
        (["layers.0.dropout=null"], lambda m: m.nodes[0].layer.dropout == 0.0),
        (["optimizer.lr=Null"], lambda m: m.optimizer.lr == 0.001),  # the default again
        (["export.opset=null"], lambda m: m.export == ir.Export()),  # nothing to remove
        (["input.shape.0=null"], lambda m: m.input.shape == (None, 1)),  # a list entry: null itself
    ],
    ids=["data.validation", "early_stopping", "tilde", "in-a-layer", "back-to-default", "absent", "list-entry"],
)
def test_null_removes_the_key(base: Path, overrides: list[str], check: Callable[[ir.Model], bool]) -> None:
    assert check(model_from_text(SPEC, "nulls.yaml", base, overrides))


@pytest.mark.parametrize(
    ("override", "left"),
    [
        ("data.validation=null", {"train": "train.npz"}),
        ("export.opset=null", None),  # nothing there: no export section is made
        ("export.quantize.bits=null", None),
    ],
)
def test_nothing_else_changes(override: str, left: dict | None) -> None:
    doc = apply_overrides(load_text(SPEC, "nulls.yaml"), [override])
    expected = load_text(SPEC, "nulls.yaml").data
    if left is not None:
        expected["data"] = left
    assert doc.data == expected and not doc.problems
    # no position is left for a key that is gone (a later error would point at it)
    assert all(_holds(doc.data, path) for table in (doc.values, doc.keys) for path in table)


def _holds(data: object, path: tuple) -> bool:
    for part in path:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return False
    return True
