"""The bad-spec corpus: each file in `bad_specs/` states the exact lines `rnnc check` prints.

A case's header comment holds `# set: KEY=VALUE` lines (overrides passed with `--set`)
and `# expect: ...` lines, in the order printed:

    # expect: 12:17: layers[1].activation: ...   -> FILE:12:17: layers[1].activation: ...
    # expect: the spec is empty                  -> FILE: the spec is empty
    # expect: --set a.b=c: ...                   -> printed as written

`{dir}` stands for the corpus folder (data paths are reported absolute). The header is
part of the file, so the line numbers count it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rnnc.cli import main
from rnnc.errors import SpecError, format_path
from rnnc.spec import load_model

BAD_SPECS = Path(__file__).resolve().parent / "bad_specs"
CASES = sorted(BAD_SPECS.glob("*.yaml"))
PLACED = re.compile(r"^\d+:\d+: ")


def expected_run(spec: Path) -> tuple[list[str], list[str]]:
    """(overrides, expected stderr lines) from the case's header comment."""
    sets, lines = [], []
    for line in spec.read_text().splitlines():
        if line.startswith("# set: "):
            sets.append(line.removeprefix("# set: "))
        elif line.startswith("# expect: "):
            want = line.removeprefix("# expect: ").replace("{dir}", str(BAD_SPECS))
            if want.startswith("--set "):
                lines.append(want)
            elif PLACED.match(want):
                lines.append(f"{spec}:{want}")
            else:
                lines.append(f"{spec}: {want}")
    return sets, lines


def test_the_corpus_has_at_least_40_cases() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("spec", CASES, ids=lambda p: p.stem)
def test_every_case_states_what_it_expects(spec: Path) -> None:
    _, lines = expected_run(spec)
    assert lines, f"{spec.name} has no '# expect:' line"


@pytest.mark.parametrize("spec", CASES, ids=lambda p: p.stem)
def test_check_prints_exactly_the_expected_lines(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sets, expected = expected_run(spec)
    argv = ["check", str(spec), *(arg for s in sets for arg in ("--set", s))]
    status = main(argv)
    out, err = capsys.readouterr()
    assert err.splitlines() == expected
    assert out == ""
    assert status == 2


@pytest.mark.parametrize("spec", CASES, ids=lambda p: p.stem)
def test_each_problem_knows_its_section_as_data(spec: Path) -> None:
    """The structured path (which decides what gets built after a schema error) names
    the same place as the printed one."""
    sets, _ = expected_run(spec)
    with pytest.raises(SpecError) as caught:
        load_model(spec, sets)
    for problem in caught.value.problems:
        printed = format_path(problem.json_path)
        assert problem.path == printed or problem.path.startswith(f"{printed} ("), problem
        assert problem.section == (str(problem.json_path[0]) if problem.json_path else "")


@pytest.mark.parametrize("spec", CASES, ids=lambda p: p.stem)
def test_pythons_none_never_shows(spec: Path) -> None:
    """A shape like [null, 3] is printed as the spec writes it, not as [None, 3]."""
    sets, _ = expected_run(spec)
    with pytest.raises(SpecError) as caught:
        load_model(spec, sets)
    assert not [line for line in caught.value.lines() if "None" in line]
