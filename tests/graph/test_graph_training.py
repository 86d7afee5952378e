"""Training a graph (spec version 2): `rnnc train` end to end, and what the loop owes.

The two DESIGN.md examples train from the command line into a run directory (weights
with every IR parameter, metrics under the v2 names, model.onnx). A graph with two
outputs, one per step and one per sample, a loss_weight and normalization checks the
rest: the logged loss is the weighted sum of the outputs' losses as numpy computes
them on the real steps, padding with junk changes neither a loss nor a step, the
weights are the same bytes for the same seed, a resumed run ends where an unbroken one
does and does not adapt normalization again, and normalization's weights are the
training part's statistics over real steps.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from seq2seq_spec import seq2seq_spec

from rnnc.artifacts import load_weights, load_weights_metadata
from rnnc.cli import main
from rnnc.graph_data import graph_dataset
from rnnc.spec import load_model, model_from_text
from rnnc_torch.fit import fit
from rnnc_torch.graph_trainer import GraphTrainer

CHURN = """\
rnnc: 2
name: churn
inputs:
  events: {shape: [null, 4]}
  profile: {shape: [3]}
layers:
  - {name: enc, type: lstm, units: 6, input: events}
  - {name: both, type: concatenate, input: [enc, profile]}
  - {type: dense, units: 4, activation: relu}
  - {name: churn, type: dense, units: 1, activation: sigmoid}
outputs:
  churn: {loss: binary_crossentropy, metrics: [auc]}
optimizer: adam
training: {epochs: 2, batch_size: 8, validation_split: 0.25}
data: {train: data/train.npz}
"""

ADD = seq2seq_spec(units=6, rest='optimizer: {type: adam, lr: 0.002}\ntraining: {epochs: 2, batch_size: 8}\ndata: {train: data/train.npz}\n')

MULTI = """\
rnnc: 2
name: multi
inputs:
  events: {shape: [null, 3]}
  profile: {shape: [2]}
layers:
  - {name: norm, type: normalization, input: events}
  - {name: enc, type: gru, units: 6, return_sequences: true}
  - {name: steps, type: dense, units: 1}
  - {name: last, type: pool, mode: last, input: enc}
  - {name: both, type: concatenate, input: [last, profile]}
  - {name: kind, type: dense, units: 3, activation: softmax}
outputs:
  steps: {loss: mse, metrics: [mae]}
  kind: {loss: sparse_categorical_crossentropy, loss_weight: 0.5, metrics: [accuracy]}
optimizer: adam
training: {epochs: 2, batch_size: 8, validation_split: 0.25}
data: {train: data/train.npz}
"""

N, T = 32, 6


def churn_data(rng: np.random.Generator) -> dict[str, np.ndarray]:
    lengths = rng.integers(1, T + 1, N)
    return {"events": rng.normal(size=(N, T, 4)).astype(np.float32), "events_lengths": lengths,
            "profile": rng.normal(size=(N, 3)).astype(np.float32), "churn": rng.integers(0, 2, (N, 1)).astype(np.float32)}


def add_data(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Sums of two numbers: ids 0 pad, 1-10 the digits, 11 '+', 12 start, 13 end."""
    question, answer = np.zeros((N, 6), np.int64), np.zeros((N, 5), np.int64)
    for i, (a, b) in enumerate(rng.integers(0, 100, (N, 2))):
        q = [int(c) + 1 for c in str(a)] + [11] + [int(c) + 1 for c in str(b)]
        s = [12] + [int(c) + 1 for c in str(a + b)] + [13]
        question[i, : len(q)], answer[i, : len(s)] = q, s
    return {"question": question, "answer_in": answer}


def multi_data(rng: np.random.Generator) -> dict[str, np.ndarray]:
    lengths = rng.integers(0, T + 1, N)  # 0: a sequence with no real step
    return {"events": rng.normal(3.0, 2.0, (N, T, 3)).astype(np.float32), "events_lengths": lengths,
            "profile": rng.normal(size=(N, 2)).astype(np.float32), "steps": rng.normal(size=(N, T)).astype(np.float32),
            "kind": rng.integers(0, 3, N)}


DATA = {"churn": (CHURN, churn_data), "add": (ADD, add_data), "multi": (MULTI, multi_data)}


def train(tmp_path: Path, case: str, *argv: str, arrays: dict[str, np.ndarray] | None = None,
          run: str = "run") -> tuple[int, Path, str]:
    """`rnnc train` of a case in tmp_path (its data written unless it is there); (status, run dir, stderr)."""
    spec, make = DATA[case]
    (tmp_path / "data").mkdir(exist_ok=True)
    if arrays is not None or not (tmp_path / "data" / "train.npz").exists():
        np.savez(tmp_path / "data" / "train.npz", **(arrays if arrays is not None else make(np.random.default_rng(0))))
    (tmp_path / "spec.yaml").write_text(spec)
    capture = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stderr", capture)
        status = main(["train", str(tmp_path / "spec.yaml"), "-o", str(tmp_path / run), "--no-progress", *argv])
    return status, tmp_path / run, capture.getvalue()


def logs(run: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("case, names", [
    ("churn", ["epoch", "loss", "auc", "val_loss", "val_auc", "lr", "time"]),
    ("add", ["epoch", "loss", "accuracy", "lr", "time"]),
])
def test_the_design_examples_train_into_a_run_directory(case: str, names: list[str], tmp_path: Path) -> None:
    status, run, _ = train(tmp_path, case)
    assert status == 0
    model = load_model(run / "spec.yaml")
    assert sorted(load_weights(run / "weights.safetensors", model)) == sorted(p.name for p in model.params)
    assert [list(entry) for entry in logs(run)] == [names, names]
    assert (run / "model.onnx").stat().st_size > 0


def test_several_outputs_log_by_name_and_the_loss_is_their_weighted_sum(tmp_path: Path) -> None:
    status, run, _ = train(tmp_path, "multi")
    assert status == 0
    names = ["loss", "steps_loss", "steps_mae", "kind_loss", "kind_accuracy"]
    for entry in logs(run):
        assert list(entry) == ["epoch", *names, *(f"val_{n}" for n in names), "lr", "time"]
        for prefix in ("", "val_"):
            assert entry[f"{prefix}loss"] == pytest.approx(entry[f"{prefix}steps_loss"] + 0.5 * entry[f"{prefix}kind_loss"], rel=1e-5)


def test_same_seed_same_weights(tmp_path: Path) -> None:
    assert train(tmp_path, "multi", run="a")[0] == 0
    assert train(tmp_path, "multi", run="b")[0] == 0
    assert (tmp_path / "a" / "weights.safetensors").read_bytes() == (tmp_path / "b" / "weights.safetensors").read_bytes()
    assert train(tmp_path, "multi", "--set", "training.seed=1", run="c")[0] == 0
    assert (tmp_path / "a" / "weights.safetensors").read_bytes() != (tmp_path / "c" / "weights.safetensors").read_bytes()


def test_normalization_holds_the_training_parts_statistics_over_real_steps(tmp_path: Path) -> None:
    arrays = multi_data(np.random.default_rng(5))
    assert train(tmp_path, "multi", arrays=arrays)[0] == 0
    weights = load_weights(tmp_path / "run" / "weights.safetensors")
    kept = N - N // 4  # validation_split 0.25 holds out the last quarter
    real = np.concatenate([arrays["events"][i, :n] for i, n in enumerate(arrays["events_lengths"][:kept])]).astype(np.float64)
    np.testing.assert_allclose(weights["layers.0.mean"], real.mean(0), rtol=1e-6)
    np.testing.assert_allclose(weights["layers.0.variance"], real.var(0), rtol=1e-6)


def test_resume_ends_as_an_unbroken_run_and_adapts_nothing_again(tmp_path: Path) -> None:
    assert train(tmp_path, "multi", "--set", "training.epochs=3", run="whole")[0] == 0
    assert train(tmp_path, "multi", "--set", "training.epochs=1", run="parts")[0] == 0
    assert train(tmp_path, "multi", "--set", "training.epochs=3", "--resume", run="parts")[0] == 0
    whole, parts = (load_weights(tmp_path / r / "weights.safetensors") for r in ("whole", "parts"))
    assert all(np.array_equal(whole[k], parts[k]) for k in whole)
    # other data under the same spec: training goes on with it, normalization keeps what it adapted to
    shifted = multi_data(np.random.default_rng(0))
    shifted["events"] += 10.0
    assert train(tmp_path, "multi", "--set", "training.epochs=4", "--resume", arrays=shifted, run="parts")[0] == 0
    resumed = load_weights(tmp_path / "parts" / "weights.safetensors")
    assert np.array_equal(resumed["layers.0.mean"], whole["layers.0.mean"])
    assert np.array_equal(resumed["layers.0.variance"], whole["layers.0.variance"])
    assert not np.array_equal(resumed["layers.1.weight_ih"], whole["layers.1.weight_ih"])


def test_early_stopping_watches_an_outputs_metric(tmp_path: Path) -> None:
    stop = "{early_stopping: {monitor: val_kind_accuracy, mode: max, patience: 1, restore_best: false}}"
    status, run, _ = train(tmp_path, "multi", "--set", "training.epochs=30", "--set", f"training={stop}",
                           "--set", "training.validation_split=0.25", "--set", "training.batch_size=8")
    assert status == 0
    history = [entry["val_kind_accuracy"] for entry in logs(run)]
    assert 2 <= len(history) < 30
    assert history[-1] <= max(history[:-1])


def test_class_names_per_output_reach_the_weights_and_the_model(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    arrays = churn_data(np.random.default_rng(0)) | {"churn_classes": np.array(["stays", "leaves"])}
    assert train(tmp_path, "churn", arrays=arrays)[0] == 0
    meta = load_weights_metadata(tmp_path / "run" / "weights.safetensors")
    assert json.loads(meta["output_classes"]) == {"churn": ["stays", "leaves"]} and "classes" not in meta
    props = {p.key: p.value for p in onnx.load(tmp_path / "run" / "model.onnx").metadata_props}
    assert json.loads(props["graph"])["outputs"][0]["classes"] == ["stays", "leaves"]


# --- the loop itself -----------------------------------------------------------------


def model_of(case: str, **training: object):
    spec = DATA[case][0].replace("data: {train: data/train.npz}\n", "")
    sets = [f"training.{k}={v}" for k, v in training.items()]
    return model_from_text(spec, overrides=sets)


def test_the_loss_is_numpys_over_real_steps() -> None:
    model = model_of("multi", batch_size=64, validation_split=0)
    arrays = multi_data(np.random.default_rng(1))
    trainer = GraphTrainer(model)
    data = graph_dataset(model, arrays)
    trainer.adapt(data)
    logs = trainer.evaluate(trainer.on_device(data))
    with torch.no_grad():
        trainer.module.eval()
        out = trainer.module({k: torch.from_numpy(v) for k, v in data.inputs.items()},
                             {k: torch.from_numpy(v) for k, v in data.lengths.items()})
    steps, kind = out["steps"].numpy()[..., 0].astype(np.float64), out["kind"].numpy().astype(np.float64)
    real = np.arange(T)[None, :] < arrays["events_lengths"][:, None]
    mse = ((steps - arrays["steps"]) ** 2)[real].mean()
    ce = -np.log(np.clip(kind[np.arange(N), arrays["kind"]], 1e-7, 1 - 1e-7)).mean()
    assert logs["steps_loss"] == pytest.approx(mse, rel=1e-5)
    assert logs["kind_loss"] == pytest.approx(ce, rel=1e-5)
    assert logs["loss"] == pytest.approx(mse + 0.5 * ce, rel=1e-5)
    assert logs["steps_mae"] == pytest.approx(np.abs(steps - arrays["steps"])[real].mean(), rel=1e-5)
    assert logs["kind_accuracy"] == pytest.approx((kind.argmax(-1) == arrays["kind"]).mean())


def padded(case: str, arrays: dict[str, np.ndarray], extra: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """`arrays` with `extra` junk steps appended to every variable-length input (and
    per-step target), lengths given so that the junk is padding."""
    out = dict(arrays)
    if case == "add":
        for name in ("question", "answer_in"):
            ids = arrays[name]
            out[f"{name}_lengths"] = ((ids != 0) * np.arange(1, ids.shape[1] + 1)).max(1)
            out[name] = np.concatenate([ids, rng.integers(1, 14, (len(ids), extra))], axis=1)
            out[name][np.arange(ids.shape[1] + extra)[None, :] >= out[f"{name}_lengths"][:, None]] = rng.integers(1, 14)
    else:
        out["events"] = np.concatenate([arrays["events"], rng.normal(50, 9, (N, extra, arrays["events"].shape[2]))], 1).astype(np.float32)
        if case == "multi":
            out["steps"] = np.concatenate([arrays["steps"], rng.normal(size=(N, extra))], 1).astype(np.float32)
    return out


@pytest.mark.parametrize("case", ["churn", "add", "multi"])
def test_junk_padding_changes_no_loss_and_no_step(case: str) -> None:
    model = model_of(case, validation_split=0, shuffle="false")
    rng = np.random.default_rng(2)
    arrays = DATA[case][1](rng)
    if case == "add":  # lengths given, as for the padded copy
        arrays |= {f"{n}_lengths": ((arrays[n] != 0) * np.arange(1, arrays[n].shape[1] + 1)).max(1) for n in ("question", "answer_in")}
    runs = []
    for version in (arrays, padded(case, arrays, 3, rng)):
        trainer = GraphTrainer(model)
        data = graph_dataset(model, version)
        trainer.adapt(data)
        before = trainer.evaluate(trainer.on_device(data))["loss"]
        epoch = trainer.train_epoch(1, trainer.on_device(data), 0.01)["loss"]
        runs.append((before, epoch, trainer.module.ir_state()))
    (before, epoch, weights), (padded_before, padded_epoch, padded_weights) = runs
    assert padded_before == pytest.approx(before, rel=1e-5)
    assert padded_epoch == pytest.approx(epoch, rel=1e-5)
    for name, value in weights.items():
        np.testing.assert_allclose(padded_weights[name], value, rtol=1e-4, atol=1e-5, err_msg=name)


def test_fit_takes_a_graphs_arrays_by_name() -> None:
    model = model_of("multi", epochs=1)
    history = fit(model, multi_data(np.random.default_rng(0)), progress=False, verbose=False)
    assert list(history[0])[:3] == ["epoch", "loss", "steps_loss"] and "val_kind_accuracy" in history[0]
    assert sorted(history.weights()) == sorted(p.name for p in model.params)
