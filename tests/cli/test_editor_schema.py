"""Specs point editors at the JSON Schema that `rnnc schema` prints (docs/editors.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rnnc.cli import main

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "rnnc" / "schema" / "spec-v1.json"
SCHEMAS = {1: SCHEMA, 2: ROOT / "rnnc" / "schema" / "spec-v2.json"}
SPECS = sorted([*ROOT.glob("specs/*.yaml"), *ROOT.glob("specs/graphs/*.yaml"), *ROOT.glob("examples/*/spec.yaml")])
PREFIX = "# yaml-language-server: $schema="


def test_there_are_specs_to_check() -> None:
    assert len(SPECS) >= 8


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: str(p.relative_to(ROOT)))
def test_each_shipped_spec_names_the_schema_on_its_first_line(spec: Path) -> None:
    lines = spec.read_text(encoding="utf-8").splitlines()
    first = lines[0]
    version = 2 if "rnnc: 2" in lines else 1  # each version's file names its own schema
    assert first.startswith(PREFIX)
    assert (spec.parent / first.removeprefix(PREFIX)).resolve() == SCHEMAS[version]


def test_rnnc_schema_prints_that_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(SCHEMA.read_text())


def test_rnnc_schema_version_2_prints_the_graph_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "--version", "2"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(SCHEMAS[2].read_text())
