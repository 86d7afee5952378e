"""`rnnc tune` end to end on a tiny spec: trials, best.yaml, pruning, resume, shared storage."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from tiny_models import write_spec

from rnnc.cli import main

pytest.importorskip("torch")
optuna = pytest.importorskip("optuna")

SPACE = "layers.0.units: {int: [4, 12]}\noptimizer.lr: {float: [1.0e-3, 3.0e-2], log: true}\npruner: none\nseed: 1\n"


def _setup(tmp_path: Path, space: str = SPACE, epochs: int = 2) -> tuple[Path, Path]:
    spec = write_spec(tmp_path, n=64, training={"epochs": epochs, "batch_size": 16, "seed": 3})
    (tmp_path / "space.yaml").write_text(space)
    return spec, tmp_path / "space.yaml"


def _metrics(run: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "time"} for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_study_best_yaml_reproduces_the_best_trial(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec, space = _setup(tmp_path)
    out = tmp_path / "study"
    assert main(["tune", str(spec), "--space", str(space), "--trials", "3", "--jobs", "2", "-o", str(out)]) == 0
    said = capsys.readouterr().out
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}")
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2] and all(t.state.name == "COMPLETE" for t in trials)
    for t in trials:  # each trial's value is its run's best val_loss (early stopping is off: the last epoch)
        assert t.value == _metrics(out / "trials" / f"{t.number:04d}")[-1]["val_loss"]
    rows = [line.split()[0] for line in said.splitlines()[1:4]]
    assert rows == [str(t.number) for t in sorted(trials, key=lambda t: t.value)]  # the table, best first
    best = study.best_trial
    assert (out / "best").resolve() == (out / "trials" / f"{best.number:04d}").resolve()
    assert {p.name for p in out.glob("*.png")} == {"history.png", "importances.png", "slice.png"}
    # best.yaml trains again to the same numbers (trials ran on 1 thread each: 2 jobs)
    again = tmp_path / "again"
    assert main(["train", str(out / "best.yaml"), "-o", str(again), "--threads", str(max(1, (__import__("os").cpu_count() or 1) // 2)),
                 "--no-progress", "--device", "cpu"]) == 0
    assert _metrics(again) == _metrics(out / "best")


def test_resume_holds_the_study_to_its_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec, space = _setup(tmp_path, epochs=1)
    out = tmp_path / "study"
    args = ["tune", str(spec), "--space", str(space), "-o", str(out), "--no-progress"]
    assert main([*args, "--trials", "1"]) == 0
    capsys.readouterr()
    assert main([*args, "--trials", "1"]) == 2
    assert "already has 1 trials: pass --resume" in capsys.readouterr().err
    space.write_text(SPACE.replace("[4, 12]", "[4, 10]"))
    assert main([*args, "--trials", "2", "--resume"]) == 2
    assert "was made with another space" in capsys.readouterr().err
    space.write_text(SPACE)
    assert main([*args, "--trials", "2", "--resume"]) == 0  # one more trial: two in all
    assert len(optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}").trials) == 2


def test_pruning_ends_the_training_process(tmp_path: Path) -> None:
    from rnnc.tune.trial import Trainer, TrialPruned

    spec, _ = _setup(tmp_path, epochs=200)

    class Pruning:
        reported: list[tuple[float, int]] = []

        def report(self, value: float, step: int) -> None:
            self.reported.append((value, step))

        def should_prune(self) -> bool:
            return True

    trial = Pruning()
    with pytest.raises(TrialPruned, match=r"pruned after epoch 1: val_loss "):
        Trainer(str(spec), [], "val_loss", False, False, threads=1).run(trial, ["training.epochs=200"], tmp_path / "run")
    assert [step for _, step in trial.reported] == [1]
    assert len(_metrics(tmp_path / "run")) < 200  # the process was ended, not left to finish


def test_an_invalid_point_is_pruned_with_its_reason(tmp_path: Path) -> None:
    from rnnc.tune.space import load_space
    from rnnc.tune.study import _one
    from rnnc.tune.trial import Trainer

    spec, space = _setup(tmp_path)
    study = optuna.create_study()
    trial = study.ask()
    trial.set_user_attr("overrides", ["layers.0.units=0"])
    done = _one(study, trial, Trainer(str(spec), [], "val_loss", False, False, threads=1), tmp_path)
    assert done.state.name == "PRUNED"
    assert done.user_attrs["reason"] == "invalid spec: --set layers.0.units=0: layers[0].units: expected an integer >= 1, got 0"
    assert not (tmp_path / "trials" / "0000" / "train.log").exists()  # no process started
    assert load_space(space, spec).params  # the space itself is fine


def test_without_optuna_one_line_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    spec, space = _setup(tmp_path)
    monkeypatch.setitem(sys.modules, "optuna", None)
    assert main(["tune", str(spec), "--space", str(space), "-o", str(tmp_path / "s")]) == 2
    assert capsys.readouterr().err == "rnnc tune needs Optuna: pip install 'rnnc[tune]'\n"


def test_dry_run_prints_the_space(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec, space = _setup(tmp_path)
    assert main(["tune", str(spec), "--space", str(space), "--dry-run", "--monitor", "val_accuracy"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1:3] == ["  layers.0.units: int from 4 to 12", "  optimizer.lr: float from 0.001 to 0.03 (log scale)"]
    assert out[3].startswith("maximize val_accuracy; sampler tpe, pruner none; 20 trials")
    assert main(["tune", str(spec), "--space", str(space), "--dry-run", "--monitor", "val_auc"]) == 2
    assert "the spec logs loss and accuracy" in capsys.readouterr().err
