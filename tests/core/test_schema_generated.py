"""The JSON Schema is generated from the layer kinds' definitions and the IR's defaults.

The shipped spec-v1.json and spec-v2.json (what editors read) must be what the
definitions generate today: a test fails when one is stale, and `python -m rnnc.schema
--write` refreshes both. Each setting's schema comes from its dataclass field: type,
default, range; in version 2 every kind also takes the graph's wiring (`name`, `input`,
and `initial_state` for recurrent kinds).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import pytest

from rnnc import ir
from rnnc.layers import ALL_KINDS, GRAPH_KINDS, LAYER_KINDS
from rnnc.layers.base import LayerKind, setting
from rnnc.schema import __main__ as schema_command
from rnnc.schema import generate, load_schema


@pytest.mark.parametrize("version", [1, 2])
def test_the_shipped_schema_is_the_generated_one(version: int) -> None:
    shipped = generate.shipped_path(version).read_text("utf-8")
    assert shipped == generate.schema_text(version), f"spec-v{version}.json is stale: run python -m rnnc.schema --write"
    assert json.loads(shipped) == load_schema(version)


def test_write_refreshes_a_stale_file_and_check_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "spec-v1.json"
    stale.write_text('{"title": "old"}\n')
    monkeypatch.setattr(schema_command, "shipped_path", lambda version=1: tmp_path / f"spec-v{version}.json")
    assert schema_command.main(["--check"]) == 1
    assert "is stale: run python -m rnnc.schema --write" in capsys.readouterr().err
    assert schema_command.main(["--write"]) == 0
    assert stale.read_text() == generate.schema_text()
    assert (tmp_path / "spec-v2.json").read_text() == generate.schema_text(2)
    assert schema_command.main(["--check"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec-v1.json", "spec-v2.json"]  # no temporary file left behind


def test_a_stale_v2_file_alone_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(schema_command, "shipped_path", lambda version=1: tmp_path / f"spec-v{version}.json")
    (tmp_path / "spec-v1.json").write_text(generate.schema_text(1))
    (tmp_path / "spec-v2.json").write_text(generate.schema_text(2).replace("graphs", "grafs"))
    assert schema_command.main(["--check"]) == 1
    assert capsys.readouterr().err.strip() == f"{tmp_path / 'spec-v2.json'} is stale: run python -m rnnc.schema --write"


@dataclass(frozen=True)
class Toy(LayerKind):
    """A made-up kind."""

    size: int = setting(shared="units")
    mode: Literal["a", "b"] = setting()
    scale: float = setting(0.5, exclusiveMinimum=0, description="How much.")
    on: bool = setting(True)
    kind: ClassVar[str] = "toy"


@dataclass(frozen=True)
class ToyChild(Toy):
    own: int = setting(3, minimum=2)
    kind: ClassVar[str] = "toy_child"


# (kind, its generated $defs entry)
CASES = [
    (Toy, {
        "description": "A made-up kind.", "type": "object", "required": ["type", "size", "mode"],
        "additionalProperties": False,
        "properties": {
            "type": True, "size": {"$ref": "#/$defs/units"}, "mode": {"enum": ["a", "b"]},
            "scale": {"type": "number", "exclusiveMinimum": 0, "default": 0.5, "description": "How much."},
            "on": {"type": "boolean", "default": True},
        },
    }),
    (ToyChild, {  # its own setting right after the required ones, as simple_rnn's activation
        "type": "object", "required": ["type", "size", "mode"],
        "additionalProperties": False,
        "properties": {
            "type": True, "size": {"$ref": "#/$defs/units"}, "mode": {"enum": ["a", "b"]},
            "own": {"type": "integer", "minimum": 2, "default": 3},
            "scale": {"type": "number", "exclusiveMinimum": 0, "default": 0.5, "description": "How much."},
            "on": {"type": "boolean", "default": True},
        },
    }),
]


@pytest.mark.parametrize(("cls", "expected"), CASES, ids=[c[0].kind for c in CASES])
def test_a_kinds_branch_comes_from_its_fields(cls: type[LayerKind], expected: dict) -> None:
    generated = generate.layer_schema(cls)
    assert generated == expected
    assert list(generated["properties"]) == list(expected["properties"])  # the order error messages list them in


@pytest.mark.parametrize("kind", list(LAYER_KINDS))
def test_every_kinds_branch_is_its_definition(kind: str) -> None:
    cls = LAYER_KINDS[kind]
    schema = load_schema()
    branch = next(b["then"]["$ref"] for b in schema["$defs"]["layer"]["allOf"] if b["if"]["properties"]["type"]["const"] == kind)
    assert schema["$defs"][branch.removeprefix("#/$defs/")] == generate.layer_schema(cls)


@pytest.mark.parametrize("kind", list(ALL_KINDS))
def test_every_kinds_v2_branch_is_its_definition_with_the_wiring(kind: str) -> None:
    cls = ALL_KINDS[kind]
    schema = load_schema(2)
    branch = next(b["then"]["$ref"] for b in schema["$defs"]["layer"]["allOf"] if b["if"]["properties"]["type"]["const"] == kind)
    entry = schema["$defs"][branch.removeprefix("#/$defs/")]
    assert entry == generate.layer_schema(cls, 2)
    own = set(generate.layer_schema(cls)["properties"])
    wiring = {"name", "input"} | ({"initial_state"} if issubclass(cls, ir.Recurrent) else set())
    assert set(entry["properties"]) == own | wiring


def test_v1_lists_the_chain_kinds_and_v2_every_kind() -> None:
    assert load_schema(1)["$defs"]["layer"]["properties"]["type"]["enum"] == list(LAYER_KINDS)
    assert load_schema(2)["$defs"]["layer"]["properties"]["type"]["enum"] == list(ALL_KINDS)
    assert GRAPH_KINDS and not set(GRAPH_KINDS) & set(LAYER_KINDS)


def test_export_opset_bounds_follow_the_core_constant() -> None:
    opset = generate.spec_schema()["$defs"]["export"]["properties"]["opset"]
    assert (opset["minimum"], opset["maximum"]) == (ir.EXPORT_OPSETS.start, ir.EXPORT_OPSETS.stop - 1)
    assert opset["description"].startswith(f"The ONNX opset of the exported model: {ir.EXPORT_OPSETS.start} to")
