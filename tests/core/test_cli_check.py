"""`rnnc check`, `rnnc schema` and the command line's exit codes, run in-process.

Exit status 0 for a valid spec (with its summary table), 2 for anything wrong with the
input (spec, file, command line), and never a traceback. Two tests run the real
`python -m rnnc` process to prove the same from the outside.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from rnnc import ir
from rnnc.cli import main
from rnnc.spec import load_model

SEED_SUMMARY = """\
seed-binary  ({spec})
#  layer              output shape     params
---------------------------------------------
   input              [10, 1] float32
0  simple_rnn(32)     [32]              1,120
1  dense(1, sigmoid)  [1]                  33
---------------------------------------------
total params: 1,153   loss binary_crossentropy, optimizer adam (lr 0.003)
"""

PER_TIMESTEP = """\
rnnc: 1
name: tagger
input: {shape: [null, 3]}
layers:
  - {type: gru, units: 8, return_sequences: true, bidirectional: true}
  - {type: dense, units: 5, activation: softmax}
loss: sparse_categorical_crossentropy
optimizer: {type: sgd, momentum: 0.9, nesterov: true}
"""


def test_seed_spec_prints_its_summary(specs_with_data: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    spec = specs_with_data["seed_binary"]
    assert main(["check", str(spec)]) == 0
    out, err = capsys.readouterr()
    assert out == SEED_SUMMARY.format(spec=spec)
    assert err == ""


@pytest.mark.parametrize("name", ["seed_binary", "lstm_classifier", "gru_forecaster", "gru_stacked_bidir", "text_lstm"])
def test_summary_total_equals_the_ir_count(name: str, specs_with_data: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    spec = specs_with_data[name]
    assert main(["check", str(spec)]) == 0
    out = capsys.readouterr().out
    model = load_model(spec)
    assert f"total params: {model.param_count:,} " in out
    for node in model.nodes:
        assert f"{node.param_count:,}" in out.splitlines()[4 + node.index]


def test_every_ready_spec_is_valid(specs_with_data: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert len(specs_with_data) >= 5
    assert main(["check", "-q", *map(str, specs_with_data.values())]) == 0
    assert capsys.readouterr() == ("", "")


def test_quiet_prints_nothing_for_a_valid_spec(specs_with_data: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-q", str(specs_with_data["seed_binary"])]) == 0
    assert capsys.readouterr() == ("", "")


def test_overrides_change_the_model(specs_with_data: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    spec = specs_with_data["seed_binary"]
    assert main(["check", str(spec), "--set", "training.epochs=5", "--set", "layers.0.units=64"]) == 0
    out = capsys.readouterr().out
    assert "0  simple_rnn(64)     [64]              4,288" in out
    assert "total params: 4,353 " in out
    model = load_model(spec, ["training.epochs=5", "layers.0.units=64"])
    assert (model.training.epochs, model.nodes[0].layer.units) == (5, 64)


@pytest.mark.parametrize(
    ("override", "check"),
    [
        ("training.epochs=5", lambda m: m.training.epochs == 5),
        ("training.shuffle=no", lambda m: m.training.shuffle is False),  # a YAML 1.1 boolean
        ("optimizer.lr=1e-2", lambda m: m.optimizer.lr == 0.01),  # a YAML 1.2 float, not the string '1e-2'
        ("optimizer.lr=0.01", lambda m: m.optimizer.lr == 0.01),
        ("layers.1.activation=sigmoid", lambda m: m.nodes[1].layer.activation == "sigmoid"),
        ("training.early_stopping={monitor: val_auc, patience: 2}", lambda m: m.training.early_stopping.mode == "max"),
        ("training.lr_schedule.type=cosine", lambda m: m.training.lr_schedule.type == "cosine"),
        ("description=", lambda m: m.description == ""),
        ("metrics=[accuracy]", lambda m: m.metrics == ("accuracy",)),
    ],
)
def test_override_values_are_yaml(specs_with_data: dict[str, Path], override: str, check: Callable[[ir.Model], bool]) -> None:
    assert check(load_model(specs_with_data["seed_binary"], [override]))


def test_dense_after_return_sequences_is_per_timestep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "tagger.yaml"
    spec.write_text(PER_TIMESTEP)
    assert main(["check", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "gru(8, bidirectional, sequences)  [time, 16]" in out
    assert "dense(5, softmax)                 [time, 5]" in out
    assert "[variable length]" in out.splitlines()[0]
    model = load_model(spec)
    assert model.sequence_output and model.variable_length


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path / "nope.yaml")]) == 2
    assert capsys.readouterr() == ("", f"{tmp_path / 'nope.yaml'}: no such file\n")


def test_a_bad_spec_does_not_stop_the_others(specs_with_data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rnnc: 3\n")
    assert main(["check", str(bad), str(specs_with_data["seed_binary"])]) == 2
    out, err = capsys.readouterr()
    assert out.startswith("seed-binary  (")
    assert err.splitlines()[-1] == f"{bad}:1:7: rnnc: unsupported spec version 3; this rnnc reads versions 1 and 2"


def test_several_specs_print_tables_apart(specs_with_data: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    seed, text = specs_with_data["seed_binary"], specs_with_data["text_lstm"]
    assert main(["check", str(seed), str(text)]) == 0
    out = capsys.readouterr().out
    first, second = out.split("\n\n")
    assert first + "\n" == SEED_SUMMARY.format(spec=seed)
    assert second.startswith(f"text-lstm  ({text})  [variable length]\n")


@pytest.mark.parametrize("argv", [["check"], ["bogus"], [], ["check", "x.yaml", "--set"], ["check", "--frobnicate", "x.yaml"]])
def test_bad_command_line_exits_2_with_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnc") and err.rstrip("\n").splitlines()[-1].startswith("rnnc")
    assert "Traceback" not in err


def run_rnnc(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rnnc", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_process_exits_0_on_a_valid_spec(specs_with_data: dict[str, Path]) -> None:
    done = run_rnnc("check", "seed_binary.yaml", cwd=specs_with_data["seed_binary"].parent)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == SEED_SUMMARY.format(spec="seed_binary.yaml")


def test_process_exits_2_without_traceback_on_a_bad_spec() -> None:
    corpus = Path(__file__).resolve().parent / "bad_specs"
    done = run_rnnc("check", "many_errors_together.yaml", "yaml_syntax_tab_indent.yaml", cwd=corpus)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 11
    assert all(line.startswith(("many_errors_together.yaml:", "yaml_syntax_tab_indent.yaml:")) for line in done.stderr.splitlines())
