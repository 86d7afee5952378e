"""bench/README.md's tables come from the committed JSON in bench/results/, and the
limit they are measured against is the best BLAS library's, not torch's alone.

The first test is the staleness check (as a generated schema is checked): it fails when
someone commits new results without `python bench/render.py`, or edits a rendered
table by hand. The others pin what the check and the limit depend on.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def bench_module(name: str) -> ModuleType:
    """A bench/ script as a module (bench/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = bench_module("render")
limit = bench_module("limit")


def test_readme_tables_are_rendered_from_the_committed_results() -> None:
    readme = render.README.read_text()
    text, problems = render.rendered(readme)
    assert problems == []
    assert render.stale(readme) == [], "run: python bench/render.py"
    assert text == readme
    regions = {match["name"] for match in render.REGION.finditer(readme)}
    assert regions == {path.name for path in render.RESULTS.glob("*.json")}, "every committed results file has its region"


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """bench/README.md and bench/results/ in a folder of their own, for a test to edit."""
    shutil.copy(render.README, tmp_path / "README.md")
    shutil.copytree(render.RESULTS, tmp_path / "results")
    return tmp_path


def run(folder: Path, *flags: str) -> int:
    return render.main([*flags, "--readme", str(folder / "README.md"), "--results", str(folder / "results")])


def test_check_names_the_stale_results_and_rendering_refreshes_only_their_region(
        copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (copy / "README.md").read_text()
    data = json.loads((copy / "results" / "run_all_1thread.json").read_text())
    data["load_before"] += 1
    (copy / "results" / "run_all_1thread.json").write_text(json.dumps(data))
    assert run(copy, "--check") == 1
    assert capsys.readouterr().err.splitlines() == [
        f"render.py: {copy / 'README.md'}'s tables from results/run_all_1thread.json are stale: run python bench/render.py"]
    assert (copy / "README.md").read_text() == before, "--check changes nothing"
    assert run(copy) == 0
    after = (copy / "README.md").read_text()
    assert f"load average {data['load_before']:.2f} before" in after
    outside = lambda text: render.REGION.sub("", text)  # noqa: E731
    assert outside(after) == outside(before)
    assert run(copy, "--check") == 0


def test_a_hand_edited_table_is_stale(copy: Path) -> None:
    readme = (copy / "README.md").read_text()
    body = next(render.REGION.finditer(readme))["body"]
    (copy / "README.md").write_text(readme.replace(body, body.replace("|---|", "| --- |", 1)))
    assert run(copy, "--check") == 1


BAD_RESULTS = [
    ("missing", None, "cannot read it (No such file or directory)"),
    ("not JSON", "{", "not JSON (Expecting property name"),
    ("lacks a part", "{}", "not a complete run_all_1thread result (KeyError: 'machine')"),
    ("a part of the wrong type", '{"machine": [], "limit": {}}', "not a complete run_all_1thread result (TypeError: "),
]


@pytest.mark.parametrize(("case", "content", "message"), BAD_RESULTS, ids=[case for case, _, _ in BAD_RESULTS])
def test_bad_results_file_is_one_line_exit_2_and_the_readme_untouched(
        copy: Path, capsys: pytest.CaptureFixture[str], case: str, content: str | None, message: str) -> None:
    path = copy / "results" / "run_all_1thread.json"
    if content is None:
        path.unlink()
    else:
        path.write_text(content)
    before = (copy / "README.md").read_text()
    assert run(copy) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"render.py: {path}: ") and message in err[0]
    assert (copy / "README.md").read_text() == before
    assert [p.name for p in copy.iterdir() if p.name.startswith(".README")] == [], "no temporary file left"


def test_a_readme_without_regions_is_refused(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (copy / "README.md").write_text("# Benchmarks\n")
    assert run(copy, "--check") == 2
    assert "no rendered region" in capsys.readouterr().err


def rates(library: str, *gflops: float) -> dict:
    return {"library": library, "blas": library.upper(), "gflops": list(gflops)}


def test_the_limit_is_the_best_library_and_shares_are_measured_against_it() -> None:
    # torch's matmul at 190 GFLOP/s and OpenBLAS at 384: a system at 220 GFLOP/s is
    # 57% of the limit, not 116%.
    found = limit.summarise([[rates("numpy", 380, 384), rates("onnxruntime", 346), rates("torch", 187)],
                             [rates("numpy", 390), rates("onnxruntime", 340), rates("torch", 196)]], threads=2)
    assert (found["best"], found["median"], found["min"], found["max"]) == ("numpy", 384, 380, 390)
    assert found["libraries"]["torch"]["median"] == pytest.approx(191.5)
    assert render.share(rate=1.0, flops=220e9, limit=found) == pytest.approx(100 * 220 / 384)


def test_the_table_names_the_limits_library_and_the_openblas_settings_removed() -> None:
    results = json.loads((render.RESULTS / "run_all_1thread.json").read_text())
    libraries = results["limit"]["all"]["libraries"]
    libraries["onnxruntime"]["median"] = 10 * libraries["torch"]["median"]
    results["limit"]["all"].update(best="onnxruntime", median=libraries["onnxruntime"]["median"])
    libraries["numpy"]["env_removed"] = {"OPENBLAS_CORETYPE": "Haswell"}
    text = render.run_all_tables(results)
    assert "The limit is the best median (bold): onnxruntime `MatMul` graph on 1 thread." in text
    assert "| MLAS | **" in text and text.count("**") == 2
    assert "numpy's process ran without OPENBLAS_CORETYPE=Haswell, which the run's environment set" in text
    assert "CPU vector ISA: " in text


def test_a_library_that_fails_is_named_and_left_out_of_the_limit() -> None:
    found = limit.summarise([[rates("numpy", 100), {"library": "torch", "error": "ModuleNotFoundError: torch"}]], threads=1)
    assert found["best"] == "numpy"
    assert found["libraries"]["torch"] == {"library": "torch", "error": "ModuleNotFoundError: torch", "gflops": []}


def test_no_library_measured_is_one_line_naming_each_failure() -> None:
    with pytest.raises(SystemExit, match=r"^limit.py: no BLAS library could be measured: numpy: ImportError: x; torch: no samples$"):
        limit.summarise([[{"library": "numpy", "error": "ImportError: x"}, rates("torch")]], threads=1)


CPUINFO = [
    ("AVX2 only", "flags\t\t: fpu sse2 avx avx2 fma\n", ["avx2"]),
    ("AVX-512 with bf16", "flags\t: avx2 avx512f avx512bw avx512_bf16\n", ["avx2", "avx512f", "avx512_bf16"]),
    ("AMX", "flags\t: avx2 avx512f amx_tile amx_bf16 amx_int8\n", ["avx2", "avx512f", "amx_tile", "amx_bf16", "amx_int8"]),
    ("no flags line", "processor\t: 0\n", []),
]


@pytest.mark.parametrize(("case", "text", "expected"), CPUINFO, ids=[case for case, _, _ in CPUINFO])
def test_vector_isa_from_cpuinfo(tmp_path: Path, case: str, text: str, expected: list[str]) -> None:
    (tmp_path / "cpuinfo").write_text(text)
    assert limit.vector_isa(tmp_path / "cpuinfo") == expected


def test_numpys_measurement_runs_without_the_machines_openblas_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setenv("OPENBLAS_L2_SIZE", "1048576")
    found = limit.measure_library("numpy", threads=1, size=64, reps=1)
    assert found["env_seen"] == {"OPENBLAS_CORETYPE": None, "OPENBLAS_L2_SIZE": None}
    assert found["env_removed"] == {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "1048576"}
    assert found["gflops"][0] > 0


def test_every_library_is_measured_in_a_child_of_its_own() -> None:
    found = limit.sample(threads=1, size=64, reps=1)
    assert [entry["library"] for entry in found] == list(limit.LIBRARIES)
    assert all("error" not in entry and entry["gflops"][0] > 0 and entry["blas"] for entry in found), found
