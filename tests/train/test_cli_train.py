"""`rnnc train`: the run directory, exit statuses, and what is left after a failure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from tiny_models import write_spec

from rnnc.artifacts import load_weights
from rnnc.cli import main
from rnnc.spec import load_model
from rnnc_torch.checkpoint import load_checkpoint


def train(*args: str | Path) -> int:
    return main(["train", *map(str, args), "--device", "cpu"])


def test_run_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("rnnc.cli.progress.on_terminal", lambda: True)  # a bar is drawn on terminals only
    spec = write_spec(tmp_path)
    run = tmp_path / "run"
    assert train(spec, "-o", run) == 0
    out, err = capsys.readouterr()
    assert "epoch 2/2  loss " in out and "val_accuracy" in out
    assert "epoch 1/2" in err  # the progress bar
    model = load_model(spec)
    saved = yaml.safe_load((run / "spec.yaml").read_text())
    assert saved["layers"] == yaml.safe_load(spec.read_text())["layers"]
    assert saved["data"]["train"] == str(tmp_path / "train.npz")  # absolute: trains from anywhere
    weights = load_weights(run / "weights.safetensors", model)
    assert set(weights) == {p.name for p in model.params}
    logs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [entry["epoch"] for entry in logs] == [1, 2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"} <= set(logs[0])
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["epoch"] == 2 and len(state["history"]) == 2
    try:
        from rnnc_onnx import export  # noqa: F401
    except ImportError:
        assert not (run / "model.onnx").exists()
    else:
        assert (run / "model.onnx").stat().st_size > 0
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")], "no temporary files left"


def test_overrides_reach_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path)
    run = tmp_path / "run"
    assert train(spec, "-o", run, "--set", "training.epochs=1", "--no-progress") == 0
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1
    assert yaml.safe_load((run / "spec.yaml").read_text())["training"]["epochs"] == 1
    assert capsys.readouterr().err.count("epoch 1/1") == 0  # --no-progress


def test_default_run_directory_is_runs_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = write_spec(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert train(spec, "--set", "training.epochs=1", "--no-progress") == 0
    assert (tmp_path / "runs" / "tiny" / "weights.safetensors").is_file()


def test_diverging_run_exits_1_and_keeps_the_last_good_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Epoch 1 trains at lr 0.01; from epoch 2 the step schedule makes it 1e10.
    spec = write_spec(
        tmp_path,
        layers=[{"type": "simple_rnn", "units": 4, "activation": "relu"}, {"type": "dense", "units": 1}],
        loss="mse", metrics=[], optimizer={"type": "sgd", "lr": 0.01},
        training={"epochs": 4, "batch_size": 16, "lr_schedule": {"type": "step", "step_size": 1, "gamma": 1e12}},
    )
    run = tmp_path / "run"
    assert train(spec, "-o", run, "--no-progress") == 1
    err = capsys.readouterr().err
    assert "training diverged" in err and "the checkpoint of epoch 1 is kept" in err
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 1
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1
    weights = load_weights(run / "weights.safetensors")
    assert all(np.isfinite(w).all() for w in weights.values())


# (what to break, expected fragment on stderr)
BAD_RUNS = [
    ("missing data", lambda d: (d / "train.npz").unlink(), "no such file"),
    ("truncated data", lambda d: (d / "train.npz").write_bytes(b"PK\x03\x04"), "train.npz: not a valid .npz archive"),
    ("data labels", lambda d: np.savez(d / "train.npz", x=np.zeros((4, 6, 2)), y=np.full(4, 3.0)), "needs labels in [0, 1]"),
    ("validation features", lambda d: np.savez(d / "val.npz", x=np.zeros((4, 6, 3)), y=np.zeros(4)), "val.npz: x has 3 features per step"),
]


@pytest.mark.parametrize(("case", "damage", "fragment"), BAD_RUNS, ids=[b[0] for b in BAD_RUNS])
def test_bad_data_exits_2_and_makes_no_run_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, damage, fragment: str) -> None:
    spec = write_spec(tmp_path)
    damage(tmp_path)
    run = tmp_path / "run"
    assert train(spec, "-o", run) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1
    assert not run.exists()


def test_resume_refuses_a_changed_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path)
    run = tmp_path / "run"
    assert train(spec, "-o", run, "--set", "training.epochs=1", "--no-progress") == 0
    assert train(spec, "-o", run, "--resume", "--set", "optimizer.lr=0.5") == 2
    assert "made from a different spec" in capsys.readouterr().err
    # More epochs are not a different spec: the run goes on from epoch 1.
    assert train(spec, "-o", run, "--resume", "--no-progress") == 0
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2


def test_resume_needs_a_run_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path)
    assert train(spec, "-o", tmp_path / "nowhere", "--resume") == 2
    assert "is not a run directory" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path)
    assert main(["train", str(spec), "-o", str(tmp_path / "run"), "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path)
    assert train(spec, "-o", tmp_path / "run") == 0  # captured stderr is not a terminal
    out, err = capsys.readouterr()
    assert "epoch 2/2  loss " in out
    assert "step/s" not in err and "epoch 1/2" not in err


def test_threads_pins_the_run_whatever_torch_was_set_to(tmp_path: Path) -> None:
    """`--threads 1` from a process on two threads trains what a one-thread process
    trains (an LSTM that two threads would shard, so the thread count shows)."""
    layers = [{"type": "lstm", "units": 64}, {"type": "dense", "units": 1, "activation": "sigmoid"}]
    spec = write_spec(tmp_path, n=192, layers=layers, training={"epochs": 1, "batch_size": 64, "seed": 3})
    weights = {}
    for name, ambient, extra in [("pinned", 2, ["--threads", "1"]), ("one", 1, []), ("two", 2, [])]:
        torch.set_num_threads(ambient)
        assert train(spec, "-o", tmp_path / name, "--no-progress", *extra) == 0
        assert torch.get_num_threads() == ambient  # put back afterwards
        weights[name] = load_weights(tmp_path / name / "weights.safetensors")
    for key, value in weights["one"].items():
        np.testing.assert_array_equal(weights["pinned"][key], value, err_msg=key)
    assert any(not np.array_equal(weights["two"][k], v) for k, v in weights["one"].items())  # not vacuous


def test_threads_below_one_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path)
    assert train(spec, "-o", tmp_path / "run", "--threads", "0") == 2
    assert capsys.readouterr().err.strip() == "--threads 0: expected a number of threads >= 1"
    assert not (tmp_path / "run").exists()


# --- the model.onnx a run promises ---------------------------------------------------


def test_an_opset_the_exporter_cannot_write_is_refused_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path)
    assert train(spec, "-o", tmp_path / "run", "--set", "export.opset=16") == 2
    assert capsys.readouterr().err.strip() == "--set export.opset=16: export.opset: expected an integer >= 18 and <= 23, got 16"
    assert not (tmp_path / "run").exists()


def test_export_settings_are_checked_before_the_first_step(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the exporter refuses is refused before training, at its place in the spec."""
    rnnc_onnx = pytest.importorskip("rnnc_onnx")
    from rnnc.errors import Problem

    refusal = Problem("tiny", None, None, "layers[0] (gru)", "cannot be exported", ("layers", 0))
    monkeypatch.setattr(rnnc_onnx, "export_problems", lambda model: [refusal])
    spec = write_spec(tmp_path)
    assert train(spec, "-o", tmp_path / "run", "--no-progress") == 2
    out, err = capsys.readouterr()
    assert err.strip() == f"{spec}:8:3: layers[0] (gru): cannot be exported" and "epoch" not in out
    assert not (tmp_path / "run").exists()


def test_a_model_onnx_that_cannot_be_written_fails_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    rnnc_onnx = pytest.importorskip("rnnc_onnx")
    from rnnc.errors import ArtifactError

    def refuse(model, weights, path, **options):
        raise ArtifactError(f"{path}: cannot write: Permission denied; nothing was written")

    monkeypatch.setattr(rnnc_onnx, "export", refuse)
    spec, run = write_spec(tmp_path), tmp_path / "run"
    assert train(spec, "-o", run, "--no-progress") == 1
    err = capsys.readouterr().err.strip().splitlines()
    command = f"rnnc compile {run}/spec.yaml --backend onnx --weights {run}/weights.safetensors -o {run}/model.onnx"
    assert err == [f"rnnc train: {run}/model.onnx not written: {run}/model.onnx: cannot write: Permission denied; "
                   f"nothing was written; the weights are saved in {run}/weights.safetensors, export them with: {command}"]
    monkeypatch.undo()
    assert main(command.split()[1:]) == 0 and (run / "model.onnx").stat().st_size > 0


def test_without_the_onnx_backend_the_run_says_so_at_its_start(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "rnnc_onnx", None)  # import rnnc_onnx now raises ImportError
    spec, run = write_spec(tmp_path), tmp_path / "run"
    assert train(spec, "-o", run, "--no-progress", "--set", "training.epochs=1") == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("note: the ONNX backend cannot be imported (") and "so this run writes no model.onnx" in err[0]
    assert err[0].endswith(f"export the trained weights with: rnnc compile {run}/spec.yaml --backend onnx "
                           f"--weights {run}/weights.safetensors -o {run}/model.onnx")
    assert (run / "weights.safetensors").exists() and not (run / "model.onnx").exists()


def test_two_runs_with_the_same_seed_write_the_same_weights_file(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, training={"epochs": 1, "batch_size": 16, "seed": 3})
    for name in ("a", "b"):
        assert train(spec, "-o", tmp_path / name, "--no-progress") == 0
    assert (tmp_path / "a" / "weights.safetensors").read_bytes() == (tmp_path / "b" / "weights.safetensors").read_bytes()
