"""Shared paths and fixtures for the core's tests (loader, schema, rules, shapes, CLI).

`specs_with_data` copies the ready specs in `specs/` into a temporary folder with the
data files they name (`rnnc check` reads those files' headers), so a test may edit both.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted((ROOT / "specs").glob("*.yaml"))


def data_paths(spec: Path) -> list[str]:
    data = yaml.safe_load(spec.read_text()).get("data") or {}
    return [data[role] for role in ("train", "validation", "test") if role in data]


@pytest.fixture
def specs_with_data(tmp_path: Path) -> dict[str, Path]:
    """Every spec in specs/, copied into tmp_path with its data files."""
    copies = {}
    for spec in SPECS:
        copy = tmp_path / spec.name
        shutil.copy(spec, copy)
        for rel in data_paths(spec):
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(spec.parent / rel, tmp_path / rel)
        copies[spec.stem] = copy
    return copies
