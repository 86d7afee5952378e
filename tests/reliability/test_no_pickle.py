"""No artifact or spec is ever read in a way that can run code from the file.

The product's source (`rnnc/`, `backends/`) is parsed with `ast` and every call and
import checked: no pickle (nor marshal, shelve, dill, joblib, cloudpickle), no
`torch.load` without `weights_only=True`, no `allow_pickle=True` anywhere (`np.load`,
`read_array`), no `yaml.load`, `yaml.unsafe_load`, `yaml.full_load` or the loaders
that build objects (`Loader`, `FullLoader`, `UnsafeLoader`), no `torch.jit.load`, no
builtin `eval`/`exec`. The checker itself is tested on snippets that must be flagged.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(p for folder in ("rnnc", "backends") for p in (ROOT / folder).rglob("*.py"))

UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "joblib", "cloudpickle"}
UNSAFE_YAML = {"load", "unsafe_load", "full_load", "load_all", "unsafe_load_all", "full_load_all",
               "Loader", "FullLoader", "UnsafeLoader", "CLoader", "CFullLoader", "CUnsafeLoader"}


def dotted(node: ast.AST) -> str:
    """`torch.jit.load` for an attribute chain, '' for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = dotted(node.value)
        return f"{head}.{node.attr}" if head else ""
    return ""


def is_true(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def unsafe_uses(source: str, origin: str) -> list[str]:
    """Each unsafe call or import in `source`, as `origin:line: what`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            found += [f"{origin}:{line}: import {a.name}" for a in node.names if a.name.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in UNSAFE_MODULES:
                found.append(f"{origin}:{line}: from {node.module} import")
            if node.module == "yaml":
                found += [f"{origin}:{line}: from yaml import {a.name}" for a in node.names if a.name in UNSAFE_YAML]
        elif isinstance(node, ast.Attribute) and dotted(node.value) == "yaml" and node.attr in UNSAFE_YAML:
            found.append(f"{origin}:{line}: yaml.{node.attr}")
        elif isinstance(node, ast.Call):
            name = dotted(node.func)
            keywords = {k.arg: k.value for k in node.keywords}
            if name in ("eval", "exec"):
                found.append(f"{origin}:{line}: {name}()")
            if name == "torch.load" and not is_true(keywords.get("weights_only", ast.Constant(False))):
                found.append(f"{origin}:{line}: torch.load without weights_only=True")
            if name in ("torch.jit.load", "torch.package.PackageImporter"):
                found.append(f"{origin}:{line}: {name}")
            if "allow_pickle" in keywords and not (isinstance(keywords["allow_pickle"], ast.Constant) and keywords["allow_pickle"].value is False):
                found.append(f"{origin}:{line}: {name} with allow_pickle not False")
    return found


def test_the_product_never_unpickles_or_builds_objects_from_files() -> None:
    assert len(SOURCES) > 30, "the scan must see the product's source"
    problems = [p for path in SOURCES for p in unsafe_uses(path.read_text(), str(path.relative_to(ROOT)))]
    assert problems == []


def test_every_torch_load_and_np_load_is_checked() -> None:
    """The scan sees the loads that exist (so a renamed import would not hide one)."""
    calls = [dotted(n.func) for path in SOURCES for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call)]
    assert "torch.load" in calls and "np.load" in calls


# (snippet, what the checker must report)
FLAGGED = [
    ("import pickle", "import pickle"),
    ("import joblib as j", "import joblib"),
    ("from pickle import loads", "from pickle import"),
    ("from yaml import FullLoader", "from yaml import FullLoader"),
    ("yaml.load(text)", "yaml.load"),
    ("yaml.load(text, Loader=yaml.Loader)", "yaml.Loader"),
    ("yaml.unsafe_load(text)", "yaml.unsafe_load"),
    ("yaml.full_load(text)", "yaml.full_load"),
    ("torch.load(path)", "torch.load without weights_only=True"),
    ("torch.load(path, weights_only=False)", "torch.load without weights_only=True"),
    ("torch.load(path, weights_only=flag)", "torch.load without weights_only=True"),
    ("torch.jit.load(path)", "torch.jit.load"),
    ("np.load(path, allow_pickle=True)", "np.load with allow_pickle not False"),
    ("np.lib.format.read_array(f, allow_pickle=flag)", "np.lib.format.read_array with allow_pickle not False"),
    ("eval(text)", "eval()"),
    ("exec(text)", "exec()"),
]
ALLOWED = [
    "yaml.safe_load(text)", "yaml.compose(text, Loader=_Loader)", "yaml.parse(text)",
    "torch.load(buffer, map_location='cpu', weights_only=True)", "np.load(path, allow_pickle=False)",
    "np.load(path)", "module.eval()", "yaml.SafeLoader",
]


@pytest.mark.parametrize(("snippet", "expected"), FLAGGED, ids=[s for s, _ in FLAGGED])
def test_the_checker_flags(snippet: str, expected: str) -> None:
    found = unsafe_uses(snippet, "x.py")
    assert any(expected in f for f in found), found


@pytest.mark.parametrize("snippet", ALLOWED)
def test_the_checker_allows(snippet: str) -> None:
    assert unsafe_uses(snippet, "x.py") == []
