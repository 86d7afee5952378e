"""Backends are found through real `rnnc.backends` entry-point metadata, and the CLI asks
of them only what `rnnc.plugins` declares.

A third-party backend is installed the way pip would leave it: a package plus a
`<name>.dist-info/` folder with `METADATA` and `entry_points.txt`, in a folder put on
PYTHONPATH of a fresh interpreter. Nothing patches rnnc's discovery. The toy backend
provides every method of every capability and nothing more, and `rnnc train`,
`compile` and `backends` drive it: it trains (without torch), the ONNX backend exports
its run, and it exports on its own.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

TOY_BACKEND = '''\
"""A third party's backend: it "trains" initial weights and exports a JSON summary."""

import json
import os

from rnnc.artifacts import atomic_write_text, save_weights
from rnnc.errors import Problem
from rnnc.initial import initial_weights
from rnnc.run_dir import SPEC, WEIGHTS


class ToyBackend:
    name = "toy"
    capabilities = frozenset({"train", "infer", "export"})

    def compile(self, model, weights=None, **options):
        kinds = ",".join(node.layer.kind for node in model.nodes)
        return f"{type(model).__module__}.{type(model).__name__} {model.name} {kinds} params={model.param_count} options={sorted(options)}"

    def check(self, model):
        return [Problem(model.name, None, None, f"layers[{n.index}] ({n.layer.kind})", "toy exports at most 64 units", ("layers", n.index))
                for n in model.nodes if getattr(n.layer, "units", 0) > 64]

    def export(self, model, weights, path, **options):
        total = None if weights is None else round(float(sum(w.sum() for w in weights.values())), 4)
        atomic_write_text(path, json.dumps({"model": model.name, "weights": total, "options": sorted(options)}))

    def train(self, model, run_dir, *, spec, resume, device, progress, threads=None):
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / SPEC, json.dumps(dict(spec)))  # JSON is YAML
        save_weights(run_dir / WEIGHTS, initial_weights(model), {"epoch": "1", "classes": json.dumps(["no", "yes"])})
        print(f"toy trained on {device}, resume={resume}, threads={threads}")
        if os.environ.get("TOY_INTERRUPT"):
            raise KeyboardInterrupt  # Ctrl-C once epoch 1 is saved
        return None

    def writes_run_dir(self):
        return True

    def launch(self, nproc, worker_args):
        print(f"toy launches {nproc} workers: rnnc {' '.join(worker_args)}")
        return 0


backend = ToyBackend()
'''

INFER_ONLY = '''\
class Mini:
    name = "mini"
    capabilities = frozenset({"infer"})

    def compile(self, model, weights=None, **options):
        return model.name


backend = Mini()
'''

# Says it can export, but has only `compile`: refused by name rather than failing mid-command.
PROMISES_TOO_MUCH = INFER_ONLY.replace('"mini"', '"liar"').replace('{"infer"}', '{"infer", "export"}')

SPEC = """\
rnnc: 1
name: plugin-demo
input: {shape: [10, 1]}
layers:
  - {type: simple_rnn, units: 32}
  - {type: dense, units: 1, activation: sigmoid}
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
    install(site, "rnnc_mini_backend", "rnnc_mini_backend", INFER_ONLY, {"mini": "rnnc_mini_backend:backend"})
    install(site, "rnnc_liar_backend", "rnnc_liar_backend", PROMISES_TOO_MUCH, {"liar": "rnnc_liar_backend:backend"})
    install(site, "rnnc_broken_backend", "rnnc_broken_backend", "import a_module_that_does_not_exist\n",
            {"broken": "rnnc_broken_backend:backend"})
    install(site, "rnnc_odd_backend", "rnnc_odd_backend", "backend = 42\n", {"odd": "rnnc_odd_backend:backend"})
    (site / "plugin-demo.yaml").write_text(SPEC)
    return site


def python(site: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run([sys.executable, *args], cwd=site, env={**os.environ, "PYTHONPATH": path, **env},
                          capture_output=True, text=True, timeout=120)


# Runs the CLI in-process and then says whether torch was imported: a toy run must not.
CLI = "import sys; from rnnc.cli import main; code = main(sys.argv[1:]); print('torch imported:', 'torch' in sys.modules); sys.exit(code)"


def rnnc(site: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return python(site, "-c", CLI, *args, **env)


@pytest.fixture(scope="module")
def listing(site: Path) -> dict[str, str]:
    """`python -m rnnc backends`, one row per backend by name (run once: it imports torch)."""
    done = python(site, "-m", "rnnc", "backends")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return {line.split()[0]: line for line in done.stdout.splitlines()}


def test_backends_lists_a_third_party_backend(listing: dict[str, str]) -> None:
    assert listing["toy"].split() == ["toy", "train", "infer", "export", "(rnnc_toy_backend:backend)"]


def test_a_broken_backend_is_listed_as_unavailable(listing: dict[str, str]) -> None:
    assert "unavailable: ModuleNotFoundError: No module named 'a_module_that_does_not_exist'" in listing["broken"]
    assert "unavailable: does not provide name, capabilities and compile()" in listing["odd"]
    assert "toy" in listing  # the broken ones did not stop the listing


def test_a_backend_without_a_capabilitys_methods_is_listed_as_unavailable(listing: dict[str, str]) -> None:
    assert "unavailable: says it can export but has no check(), export()" in listing["liar"]


def test_the_built_in_backends_provide_every_method_of_their_capabilities(listing: dict[str, str]) -> None:
    assert listing["torch"].split()[1:4] == ["train", "infer", "export"]
    assert listing["onnx"].split()[1:3] == ["infer", "export"]


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
        ("mini", "train", "backend 'mini' cannot train (it can: infer)"),
        ("liar", "export", "backend 'liar' cannot be loaded: says it can export but has no check(), export()"),
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


# --- the CLI drives a third party's backend ---------------------------------------------


def test_rnnc_train_trains_with_the_plugin_and_exports_with_the_onnx_backend(site: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    done = rnnc(site, "train", "plugin-demo.yaml", "--backend", "toy", "-o", str(run), "--threads", "2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["toy trained on auto, resume=False, threads=2", "torch imported: False"]
    assert done.stderr == f"run saved in {run}\n"
    import onnx

    props = {p.key: p.value for p in onnx.load(str(run / "model.onnx")).metadata_props}
    assert json.loads(props["classes"]) == ["no", "yes"]  # from the weights the plugin saved
    again = rnnc(site, "compile", str(run / "spec.yaml"), "--weights", str(run / "weights.safetensors"), "-o", str(tmp_path / "again.onnx"))
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again.onnx").read_bytes() == (run / "model.onnx").read_bytes()


def test_ctrl_c_in_a_plugins_run_exports_its_last_epoch_and_says_how_to_resume(site: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    done = rnnc(site, "train", "plugin-demo.yaml", "--backend", "toy", "-o", str(run), TOY_INTERRUPT="1")
    assert done.returncode == 130, done.stderr
    assert done.stderr.splitlines() == [
        f"interrupted: {run}/model.onnx holds the weights of epoch 1",
        f"rnnc train: interrupted; continue the run with: rnnc train plugin-demo.yaml -o {run} --resume --backend toy",
    ]
    assert (run / "model.onnx").stat().st_size > 0


def test_rnnc_train_nproc_hands_the_workers_to_the_plugins_launch(site: Path, tmp_path: Path) -> None:
    done = rnnc(site, "train", "plugin-demo.yaml", "--backend", "toy", "-o", "run", "--nproc", "3", "--set", "training.seed=4")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == (
        "toy launches 3 workers: rnnc train plugin-demo.yaml -o run --device auto --backend toy --set training.seed=4 --no-progress"
    )


def test_rnnc_compile_exports_with_the_plugin(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "toy.json"
    done = rnnc(site, "compile", "plugin-demo.yaml", "--backend", "toy", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"wrote {out}", "torch imported: False"]
    assert json.loads(out.read_text()) == {"model": "plugin-demo", "weights": None, "options": []}


def test_what_the_plugins_check_refuses_is_placed_in_the_spec_and_nothing_is_written(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "toy.json"
    done = rnnc(site, "compile", "plugin-demo.yaml", "--backend", "toy", "--set", "layers.0.units=65", "-o", str(out))
    assert done.returncode == 2
    assert done.stderr == "plugin-demo.yaml:5:5: layers[0] (simple_rnn): toy exports at most 64 units\n"
    assert not out.exists()


def test_compile_with_a_backend_that_cannot_export_says_what_to_use(site: Path, tmp_path: Path) -> None:
    done = rnnc(site, "compile", "plugin-demo.yaml", "--backend", "mini", "-o", str(tmp_path / "m.out"))
    assert done.returncode == 2
    assert done.stderr.startswith("backend 'mini' cannot export a model file (it can: infer); use --backend onnx")


# --- neither built-in backend knows the other ----------------------------------------------

BACKENDS = {"rnnc_torch": "rnnc_onnx", "rnnc_onnx": "rnnc_torch"}


@pytest.mark.parametrize(
    "source", sorted((ROOT / "backends").glob("rnnc_*/**/*.py")), ids=lambda p: str(p.relative_to(ROOT / "backends"))
)
def test_no_file_of_a_built_in_backend_names_the_other(source: Path) -> None:
    """Not in an import, a string or a comment: they meet only in the core's protocol."""
    package = source.relative_to(ROOT / "backends").parts[0]
    other = BACKENDS[package]
    lines = [f"{source.name}:{n}: {line.strip()}" for n, line in enumerate(source.read_text().splitlines(), 1)
             if re.search(rf"\b{other}\b", line)]
    assert not lines, f"{package} names {other}:\n" + "\n".join(lines)
