"""Specs point editors at the JSON Schema that `rnnc schema` prints (docs/editors.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rnnc.cli import main

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "rnnc" / "schema" / "spec-v1.json"
SPECS = sorted([*ROOT.glob("specs/*.yaml"), *ROOT.glob("examples/*/spec.yaml")])
PREFIX = "# yaml-language-server: $schema="


def test_there_are_specs_to_check() -> None:
    assert len(SPECS) >= 8


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: str(p.relative_to(ROOT)))
def test_each_shipped_spec_names_the_schema_on_its_first_line(spec: Path) -> None:
    first = spec.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith(PREFIX)
    assert (spec.parent / first.removeprefix(PREFIX)).resolve() == SCHEMA


def test_rnnc_schema_prints_that_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(SCHEMA.read_text())
