"""`rnnc evaluate RUN_DIR|MODEL DATA`: the spec's loss and metrics from model.onnx and
numpy, equal to what the trainer logs for the same data."""

from __future__ import annotations

import collections
import contextlib
import csv
import io
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rnnc.cli import main

torch = pytest.importorskip("torch")
from rnnc_torch.cpu.threads import set_to  # noqa: E402  (after the skip when torch is missing)

SPECS = Path(__file__).resolve().parents[2] / "specs"


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    with set_to(1):
        yield


def train(spec: str, run: Path, *sets: str) -> dict[str, float]:
    """Train and return the numbers of the trainer's `test` line."""
    out = io.StringIO()
    overrides = [arg for s in ("training.epochs=2", *sets) for arg in ("--set", s)]
    with contextlib.redirect_stdout(out):
        assert main(["train", str(SPECS / spec), "-o", str(run), "--no-progress", *overrides]) == 0
    line = next((line for line in out.getvalue().splitlines() if line.startswith("test ")), "")
    return {k: float(v) for k, v in re.findall(r"(\w+) ([-\d.e]+)", line)}


@pytest.mark.parametrize(
    ("spec", "test_file", "names"),
    [
        ("seed_binary.yaml", "seed_binary_val.npz", ("loss", "accuracy", "auc")),
        ("gru_forecaster.yaml", "series_val.csv", ("loss", "mae", "rmse")),
        ("lstm_classifier.yaml", "lstm_classifier_val.npz", None),
    ],
)
def test_evaluate_matches_the_trainers_test_line(spec: str, test_file: str, names: tuple[str, ...] | None,
                                                 tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = SPECS / "data" / test_file
    logged = train(spec, tmp_path / "run", f"data.test={data}")
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "run"), str(data), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for name in names or logged:
        assert result[name] == pytest.approx(logged[name], abs=1.5e-4, rel=1e-3), name


def test_a_model_file_with_its_spec_elsewhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = SPECS / "data" / "seed_binary_val.npz"
    train("seed_binary.yaml", tmp_path / "run")
    shutil.copy(tmp_path / "run" / "model.onnx", tmp_path / "alone.onnx")
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "alone.onnx"), str(data)]) == 2
    assert capsys.readouterr().err == f"{tmp_path / 'spec.yaml'}: no such spec; pass the spec the model was trained from with --spec\n"
    assert main(["evaluate", str(tmp_path / "alone.onnx"), str(data), "--spec", str(tmp_path / "run" / "spec.yaml")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{data}: 500 samples"
    assert re.fullmatch(r"loss [\d.]+  accuracy [\d.]+  auc [\d.]+", out[1])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nowhere", "x.npz"], "nowhere: no such run directory or model file"),
        (["{tmp}", "x.npz"], "{tmp}: no model.onnx in this run directory"),
    ],
)
def test_bad_targets_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert main(["evaluate", *(a.replace("{tmp}", str(tmp_path)) for a in args)]) == 2
    err = capsys.readouterr().err
    assert message.replace("{tmp}", str(tmp_path)) in err and err.count("\n") == 1


# --- the per-class report and per-sample losses ------------------------------------


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("seed") / "run"
    train("seed_binary.yaml", run)
    return run


def evaluate_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    capsys.readouterr()
    assert main(["evaluate", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_binary_classifier_gets_a_2x2_matrix_and_per_class_scores(seed_run: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    data = SPECS / "data" / "seed_binary_val.npz"
    result = evaluate_json(capsys, str(seed_run), str(data), "--per-sample", str(tmp_path / "losses.csv"))
    classes = [str(c) for c in np.load(data)["classes"]]
    assert result["classes"] == classes
    rows = read_csv(tmp_path / "losses.csv")
    assert [r["index"] for r in rows] == [str(i) for i in range(500)]
    counts = collections.Counter((r["true"], r["predicted"]) for r in rows)
    assert result["confusion_matrix"] == [[counts[t, p] for p in classes] for t in classes]
    truth = np.load(data)["y"].reshape(-1)
    assert [r["true"] for r in rows] == [classes[int(v)] for v in truth]  # input order
    positive = result["per_class"][classes[1]]
    tp, fp, fn = counts[classes[1], classes[1]], counts[classes[0], classes[1]], counts[classes[1], classes[0]]
    assert positive["precision"] == pytest.approx(tp / (tp + fp)) and positive["recall"] == pytest.approx(tp / (tp + fn))
    assert positive["support"] == int(truth.sum())
    assert np.mean([float(r["loss"]) for r in rows]) == pytest.approx(result["loss"], rel=1e-9)


def test_the_report_is_printed_after_the_metrics(seed_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = SPECS / "data" / "seed_binary_val.npz"
    matrix = evaluate_json(capsys, str(seed_run), str(data))["confusion_matrix"]
    assert main(["evaluate", str(seed_run), str(data)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"loss [\d.]+  accuracy [\d.]+  auc [\d.]+", out[1])
    assert out[3:6] == [
        "confusion matrix (samples; rows: true class, columns: predicted)",
        "                not above zero      above zero",
        "not above zero  " + "  ".join(f"{n:>14}" for n in matrix[0]),
    ]
    assert out[8].split() == ["precision", "recall", "f1-score", "support"]
    assert [line.split()[-1] for line in out[-3:]] == ["500"] * 3
    assert out[-2].startswith("     macro avg") and out[-1].startswith("  weighted avg")


def test_a_multiclass_report_agrees_with_the_f1_metric(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = SPECS / "data" / "lstm_classifier_val.npz"
    train("lstm_classifier.yaml", tmp_path / "run")
    result = evaluate_json(capsys, str(tmp_path / "run"), str(data))
    assert np.array(result["confusion_matrix"]).shape == (4, 4)
    assert result["macro_avg"]["f1"] == pytest.approx(result["f1"], abs=1e-12)
    assert np.trace(result["confusion_matrix"]) / result["samples"] == pytest.approx(result["accuracy"])


def test_sequence_labelling_counts_real_steps_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 9, size=40)
    x = rng.normal(size=(40, 8, 2)).astype(np.float32)
    y = (x[..., 0] > 0).astype(np.int64) + (x[..., 1] > 1)
    np.savez(tmp_path / "tags.npz", x=x, y=y, lengths=lengths, classes=np.array(["low", "mid", "high"]))
    (tmp_path / "tagger.yaml").write_text(
        "rnnc: 1\nname: tagger\ninput: {shape: [null, 2]}\n"
        "layers: [{type: gru, units: 8, return_sequences: true}, {type: dense, units: 3, activation: softmax}]\n"
        "loss: sparse_categorical_crossentropy\noptimizer: adam\nmetrics: [accuracy]\n"
        "training: {epochs: 1, batch_size: 16}\ndata: {train: tags.npz}\n"
    )
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["train", str(tmp_path / "tagger.yaml"), "-o", str(tmp_path / "run"), "--no-progress"]) == 0
    result = evaluate_json(capsys, str(tmp_path / "run"), str(tmp_path / "tags.npz"), "--per-sample", str(tmp_path / "out.csv"))
    assert np.sum(result["confusion_matrix"]) == lengths.sum()
    rows = read_csv(tmp_path / "out.csv")
    names = ["low", "mid", "high"]
    assert [r["true"].split() for r in rows] == [[names[c] for c in y[i, :n]] for i, n in enumerate(lengths)]
    assert [len(r["predicted"].split()) for r in rows] == lengths.tolist()


def test_a_regression_model_gets_per_sample_losses_and_no_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = SPECS / "data" / "series_val.csv"
    train("gru_forecaster.yaml", tmp_path / "run")
    result = evaluate_json(capsys, str(tmp_path / "run"), str(data), "--per-sample", str(tmp_path / "scores.csv"))
    assert "confusion_matrix" not in result
    rows = read_csv(tmp_path / "scores.csv")
    assert list(rows[0]) == ["index", "loss"] and len(rows) == result["samples"]
    assert np.mean([float(r["loss"]) for r in rows]) == pytest.approx(result["loss"], rel=1e-9)
    # a problem on a line of DATA keeps its line number, after the argument's name
    (tmp_path / "bad.csv").write_text("value\n0.1\nx\n")
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "run"), str(tmp_path / "bad.csv")]) == 2
    assert capsys.readouterr().err == f"DATA ({tmp_path / 'bad.csv'}:3): column 'value': 'x' is not a number\n"


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("{tmp}/a_file/losses.csv", "{tmp}/a_file/losses.csv: cannot write"),
        ("{data}", "--per-sample {data}: that is DATA itself; write the losses to another file"),
    ],
    ids=["under-a-file", "over-the-data"],
)
def test_a_per_sample_file_that_cannot_be_written(seed_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  out: str, message: str) -> None:
    data = tmp_path / "val.npz"
    shutil.copy(SPECS / "data" / "seed_binary_val.npz", data)
    (tmp_path / "a_file").write_text("")
    fill = lambda s: s.replace("{tmp}", str(tmp_path)).replace("{data}", str(data))  # noqa: E731
    capsys.readouterr()
    assert main(["evaluate", str(seed_run), str(data), "--per-sample", fill(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(fill(message)) and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "val.npz"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("missing.npz", "DATA (missing.npz): no such file"),
        ("notes.txt", "DATA (notes.txt): expected a .npz, .csv or .jsonl file, got notes.txt"),
        ("folder.npz", "DATA (folder.npz): is a directory, not a data file"),
        ("series.csv", "DATA (series.csv): a .csv data file needs data.csv (targets, window) or data.text to become samples"),
        ("other.npz", "DATA (other.npz): x has 40 timesteps, the spec's input needs 10 ([N, 10, 1])"),
    ],
    ids=["missing", "wrong-suffix", "directory", "csv-without-data.csv", "shape"],
)
def test_bad_data_names_the_argument(seed_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str], data: str, message: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("1 2 3\n")
    (tmp_path / "folder.npz").mkdir()
    shutil.copy(SPECS / "data" / "series_val.csv", tmp_path / "series.csv")
    shutil.copy(SPECS / "data" / "lstm_classifier_val.npz", tmp_path / "other.npz")
    capsys.readouterr()
    assert main(["evaluate", str(seed_run), data]) == 2
    assert capsys.readouterr().err == message + "\n"
