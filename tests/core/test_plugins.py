"""Backends are found through real `rnnc.backends` entry-point metadata.

A third-party backend is installed the way pip would leave it: a package plus a
`<name>.dist-info/` folder with `METADATA` and `entry_points.txt`, in a folder put on
PYTHONPATH of a fresh interpreter. Nothing patches rnnc's discovery.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

TOY_BACKEND = '''\
"""A third party's backend: it compiles a model to a one-line description."""

class ToyBackend:
    name = "toy"
    capabilities = frozenset({"infer", "export"})

    def compile(self, model, weights=None, **options):
        kinds = ",".join(node.layer.kind for node in model.nodes)
        return f"{type(model).__module__}.{type(model).__name__} {model.name} {kinds} params={model.param_count} options={sorted(options)}"


backend = ToyBackend()
'''

SPEC = """\
rnnc: 1
name: plugin-demo
input: {shape: [10, 1]}
layers: [{type: simple_rnn, units: 32}, {type: dense, units: 1, activation: sigmoid}]
loss: binary_crossentropy
optimizer: adam
"""


def install(site: Path, dist: str, package: str, source: str, entry_points: dict[str, str]) -> None:
    """Lay out `package` and its distribution's metadata as an installer would."""
    (site / package).mkdir(parents=True)
    (site / package / "__init__.py").write_text(source)
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[rnnc.backends]\n{lines}")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    install(site, "rnnc_toy_backend", "rnnc_toy_backend", TOY_BACKEND, {"toy": "rnnc_toy_backend:backend"})
    install(site, "rnnc_broken_backend", "rnnc_broken_backend", "import a_module_that_does_not_exist\n",
            {"broken": "rnnc_broken_backend:backend"})
    install(site, "rnnc_odd_backend", "rnnc_odd_backend", "backend = 42\n", {"odd": "rnnc_odd_backend:backend"})
    (site / "plugin-demo.yaml").write_text(SPEC)
    return site


def python(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    return subprocess.run([sys.executable, *args], cwd=site, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def listing(site: Path) -> dict[str, str]:
    """`python -m rnnc backends`, one row per backend by name (run once: it imports torch)."""
    done = python(site, "-m", "rnnc", "backends")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return {line.split()[0]: line for line in done.stdout.splitlines()}


def test_backends_lists_a_third_party_backend(listing: dict[str, str]) -> None:
    assert listing["toy"].split() == ["toy", "infer", "export", "(rnnc_toy_backend:backend)"]


def test_a_broken_backend_is_listed_as_unavailable(listing: dict[str, str]) -> None:
    assert "unavailable: ModuleNotFoundError: No module named 'a_module_that_does_not_exist'" in listing["broken"]
    assert "unavailable: does not provide name, capabilities and compile()" in listing["odd"]
    assert "toy" in listing  # the broken ones did not stop the listing


def test_get_backend_compiles_an_ir_model(site: Path) -> None:
    script = textwrap.dedent("""
        from rnnc.plugins import get_backend
        from rnnc.spec import load_model
        print(get_backend("toy", "infer").compile(load_model("plugin-demo.yaml"), batch=4))
    """)
    done = python(site, "-c", script)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "rnnc.ir.Model plugin-demo simple_rnn,dense params=1153 options=['batch']\n"


@pytest.mark.parametrize(
    ("name", "capability", "message"),
    [
        ("toy", "train", "backend 'toy' cannot train (it can: export, infer)"),
        ("broken", None, "backend 'broken' cannot be loaded: ModuleNotFoundError: No module named 'a_module_that_does_not_exist'"),
        ("nope", None, "no backend named 'nope' (installed: "),
    ],
)
def test_get_backend_refuses_with_a_usage_error(site: Path, name: str, capability: str | None, message: str) -> None:
    script = textwrap.dedent(f"""
        from rnnc.errors import UsageError
        from rnnc.plugins import get_backend
        try:
            get_backend({name!r}, {capability!r})
        except UsageError as err:
            print(err)
    """)
    done = python(site, "-c", script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(message)


def test_the_built_in_backends_are_registered_as_entry_points() -> None:
    from importlib.metadata import entry_points

    names = {e.name: e.value for e in entry_points(group="rnnc.backends")}
    assert names.get("torch") == "rnnc_torch:backend"
    assert names.get("onnx") == "rnnc_onnx:backend"
