"""The space file: each problem at its file:line:col, ranges checked against the spec."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_models import write_spec

from rnnc.errors import SpecError
from rnnc.tune.space import load_space

BAD = [
    ("layers.0.unitz: {int: [8, 64]}",
     "1:1: layers.0.unitz: not a setting this spec can take: layers[0] (gru): unknown setting 'unitz' (did you mean 'units'?)"),
    ("layers.0.units: {int: [0, 64]}",
     "1:24: layers.0.units: the spec refuses the low end 0: layers[0].units: expected an integer >= 1, got 0"),
    ("layers.7.units: {int: [8, 9]}", "1:1: layers.7.units: not a setting this spec can take: layers has no entry 7 (it has 2)"),
    ("optimizer.lr: {float: [1.0e-2, 1.0e-4]}", "1:23: optimizer.lr.float: an empty range: low 0.01 > high 0.0001"),
    ("optimizer.lr: {float: [0, 1.0e-2], log: true}", "1:24: optimizer.lr.float[0]: a log scale needs low > 0, got 0"),
    ("layers.0.type: {choice: []}", "1:25: layers.0.type.choice: expected a non-empty list of values, got []"),
    ("layers.0.type: {choice: [gru, lstn]}",
     "1:31: layers.0.type: the spec refuses the choice \"lstn\": layers[0].type: unknown layer type 'lstn' (did you mean 'lstm'?)"),
    ("training.batch_size: {int: [8, 64], lg: true}", "1:37: training.batch_size.lg: unknown setting 'lg' for int (did you mean 'log'?)"),
    ("training.epochs: {int: [1, 5], step: 3}", "1:38: training.epochs.step: high - low (4) is not a multiple of step 3"),
    ("training.epochs: {int: [1, 5], float: [1, 2]}", "1:18: training.epochs: expected exactly one of int, float, choice; got int and float"),
    ("training.epochs: 3", "1:18: training.epochs: expected a distribution: {int: [lo, hi]}, {float: [lo, hi]} or {choice: [...]}, got 3"),
    ("pruner: medain", "1:9: pruner: expected one of median, halving, none, got \"medain\" (did you mean 'median'?)"),
    ("sampler: grid", "1:10: sampler: expected one of tpe, random, got \"grid\""),
    ("pruner: none", "1:1: the space names no setting to tune (e.g. `optimizer.lr: {float: [1.0e-4, 1.0e-2], log: true}`)"),
]


@pytest.mark.parametrize(("line", "expected"), BAD, ids=[b[0] for b in BAD])
def test_bad_space(tmp_path: Path, line: str, expected: str) -> None:
    spec = write_spec(tmp_path)
    space = tmp_path / "space.yaml"
    space.write_text(line + "\n")
    with pytest.raises(SpecError) as err:
        load_space(space, spec)
    said = err.value.lines()
    assert len(said) == 1
    assert said[0].startswith(f"{space}:{expected}"), said[0]


def test_every_problem_at_once(tmp_path: Path) -> None:
    spec = write_spec(tmp_path)
    space = tmp_path / "space.yaml"
    space.write_text("layers.0.units: {int: [0, 64]}\noptimizer.lr: {float: [1, 0]}\npruner: x\n")
    with pytest.raises(SpecError) as err:
        load_space(space, spec)
    assert [line.split(": ")[0] for line in err.value.lines()] == [f"{space}:1:24", f"{space}:2:23", f"{space}:3:9"]


def test_good_space(tmp_path: Path) -> None:
    spec = write_spec(tmp_path)
    space = tmp_path / "space.yaml"
    space.write_text("layers.0.units: {int: [4, 16], log: true}\noptimizer.lr: {float: [1.0e-3, 1.0e-1]}\n"
                     "layers.0.type: {choice: [gru, lstm]}\ntraining.gradient_clip: {choice: [null, 1.0]}\npruner: halving\nseed: 3\n")
    loaded = load_space(space, spec)
    assert [(p.path, p.kind) for p in loaded.params] == [
        ("layers.0.units", "int"), ("optimizer.lr", "float"), ("layers.0.type", "choice"), ("training.gradient_clip", "choice")]
    assert (loaded.pruner, loaded.sampler, loaded.seed) == ("halving", "tpe", 3)
    assert loaded.params[0].override(8) == "layers.0.units=8"
    assert loaded.params[2].override("gru") == 'layers.0.type="gru"'
    assert loaded.params[3].override(None) == "training.gradient_clip=null"


def test_spec_problems_come_first(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, loss="nonsense")
    space = tmp_path / "space.yaml"
    space.write_text("layers.0.units: {int: [4, 16]}\n")
    with pytest.raises(SpecError) as err:
        load_space(space, spec)
    assert all(line.startswith(str(spec)) for line in err.value.lines())
