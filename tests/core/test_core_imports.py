"""The core (`rnnc/`) never imports torch or onnx: `rnnc check` must stay light, and
`rnnc predict` must run where only onnxruntime is installed."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "rnnc"
FORBIDDEN = ("torch", "onnx")


def imported_modules(source: Path) -> set[str]:
    tree = ast.parse(source.read_text(), filename=str(source))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("source", sorted(CORE.rglob("*.py")), ids=lambda p: str(p.relative_to(CORE)))
def test_no_core_module_imports_torch_or_onnx(source: Path) -> None:
    """Every import, also the lazy ones inside functions (onnxruntime is allowed)."""
    bad = {name for name in imported_modules(source) if name.split(".")[0] in FORBIDDEN}
    assert not bad, f"{source.relative_to(CORE.parent)} imports {sorted(bad)}"


def test_check_and_every_core_module_load_without_torch_or_onnx(tmp_path: Path) -> None:
    spec = tmp_path / "seed.yaml"
    spec.write_text(
        "rnnc: 1\nname: seed\ninput: {shape: [10, 1]}\n"
        "layers: [{type: simple_rnn, units: 32}, {type: dense, units: 1, activation: sigmoid}]\n"
        "loss: binary_crossentropy\noptimizer: adam\n"
    )
    script = textwrap.dedent(f"""
        import importlib, pkgutil, sys
        import rnnc
        from rnnc.cli import main
        assert main(["check", "-q", {str(spec)!r}]) == 0
        loaded_by_check = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "onnx", "onnxruntime"))
        for info in pkgutil.walk_packages(rnnc.__path__, "rnnc."):
            if info.name != "rnnc.__main__":  # it runs the CLI
                importlib.import_module(info.name)
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "onnx"))
        print(loaded_by_check, heavy)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded_by_check, heavy = done.stdout.strip().split("] [")
    assert loaded_by_check == "[", "rnnc check loaded " + loaded_by_check
    assert heavy == "]", "importing rnnc loaded " + heavy
