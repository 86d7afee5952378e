"""`rnnc predict` and `rnnc evaluate` of v2 graphs: a `.npz` of named arrays in, one
array per output (or a table of every output's columns) out, the runtime's numbers
exactly; bad input one line per problem, exit 2, nothing written; evaluate's loss and
metrics per output against numpy written here; no torch anywhere on the path."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx_graphs import mixed, reference, sample
from predict_cases import ADD, CONV, TWO, add_data, compiled

from rnnc.cli import main
from rnnc.runtime import GraphPredictor, load

rnnc_onnx = pytest.importorskip("rnnc_onnx")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("predict")


@pytest.fixture(scope="module")
def model(folder: Path) -> Path:
    return mixed(folder / "mixed.onnx")


def save(path: Path, n: int = 11, **changes: object) -> tuple[Path, dict, dict]:
    """A `mixed` input file of `n` rows (with a target array a training file would have);
    `changes` replace (or, as None, drop) arrays."""
    inputs, lengths = sample(n, seed=n)
    arrays = {**inputs, "events_lengths": lengths["events"], "churn": np.zeros((n, 1), np.float32)}
    for name, value in changes.items():
        if value is None:
            arrays.pop(name)
        else:
            arrays[name] = value
    np.savez(path, **arrays)
    return path, inputs, lengths


def table(text: str) -> tuple[list[str], list[list[str]]]:
    header, *rows = csv.reader(io.StringIO(text))
    return header, rows


def test_npz_out_holds_the_runtimes_numbers_and_the_lengths_fed(model: Path, tmp_path: Path) -> None:
    data, inputs, lengths = save(tmp_path / "in.npz", 11)
    assert main(["predict", str(model), str(data), "-o", str(tmp_path / "out.npz"), "--batch-size", "3"]) == 0
    with np.load(tmp_path / "out.npz") as out:
        written = dict(out)
    want, fed = load(model).run_with_lengths(inputs, lengths)
    assert list(written) == ["churn", "tags", "level", "events_lengths", "tokens_lengths"]
    for name in want:
        np.testing.assert_array_equal(written[name], want[name])  # the same numbers, to the bit
        np.testing.assert_allclose(written[name], reference(inputs, lengths)[name], atol=1e-5)
    np.testing.assert_array_equal(written["events_lengths"], lengths["events"])
    np.testing.assert_array_equal(written["tokens_lengths"], fed["tokens"])  # filled from the ids


def test_csv_has_every_outputs_columns_named_after_it(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, inputs, lengths = save(tmp_path / "in.npz", 5)
    assert main(["predict", str(model), str(data)]) == 0
    header, rows = table(capsys.readouterr().out)
    assert header == ["churn_label", "churn_probability", "churn_p_leave",
                      "tags_label", "tags_probability", "tags_p_0", "tags_p_1", "tags_p_2", "level_0", "level_1"]
    want = load(model).predict(inputs, lengths)
    token_lengths = ((inputs["tokens"] != 0) * np.arange(1, 5)).max(1)
    for i, row in enumerate(rows):
        cells = dict(zip(header, row, strict=True))
        p = float(want["churn"][i, 0])
        assert cells["churn_label"] == ("leave" if p > 0.5 else "stay") and float(cells["churn_p_leave"]) == pytest.approx(p, rel=1e-5)
        assert float(cells["churn_probability"]) == pytest.approx(max(p, 1 - p), rel=1e-5)
        steps = cells["tags_p_1"].split()  # one value per real step of the tokens
        assert len(steps) == token_lengths[i]
        np.testing.assert_allclose([float(s) for s in steps], want["tags"][i, : token_lengths[i], 1], rtol=1e-5)
        assert cells["tags_label"].split() == [str(c) for c in want["tags"][i, : token_lengths[i]].argmax(-1)]
        assert np.float32([cells["level_0"], cells["level_1"]]).tolist() == want["level"][i].tolist()  # %.9g round-trips float32
    assert main(["predict", str(model), str(data), "-o", str(tmp_path / "out.csv")]) == 0
    assert table((tmp_path / "out.csv").read_text()) == (header, rows)


def test_npy_and_long_csv_are_refused_for_several_outputs(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, _, _ = save(tmp_path / "in.npz", 4)
    assert main(["predict", str(model), str(data), "-o", str(tmp_path / "out.npy")]) == 2
    assert capsys.readouterr().err == (f"-o {tmp_path / 'out.npy'}: a .npy holds one array, and {model} has 3 outputs "
                                       "(churn, tags, level); write .npz or .csv\n")
    assert main(["predict", str(model), str(data), "--format", "long"]) == 2
    assert capsys.readouterr().err == (f"--format long is for a chain's per-step output; {model} is a graph, "
                                       "whose CSV has one row per sample\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npz"]


# (id, what the file holds instead, the lines on stderr; {data} is the file)
BAD_FILES = [
    ("missing input", {"word": None},
     ["{data}: no array 'word' (input 'word' [batch] int64 ids); arrays: churn, events, events_lengths, profile, tokens"]),
    ("unexpected array", {"profiles": np.zeros((11, 2))},
     ["{data}: unexpected array 'profiles' (did you mean 'profile'?); the model reads: events, profile, word, tokens, "
      "events_lengths, tokens_lengths (and ignores its outputs' targets: churn, churn_classes, tags, tags_classes, level)"]),
    ("two problems", {"word": None, "x": np.zeros(3)},
     ["{data}: no array 'word' (input 'word' [batch] int64 ids); arrays: churn, events, events_lengths, profile, tokens, x",
      "{data}: unexpected array 'x'; the model reads: events, profile, word, tokens, events_lengths, tokens_lengths "
      "(and ignores its outputs' targets: churn, churn_classes, tags, tags_classes, level)"]),
    ("dtype", {"word": np.zeros(11, np.float32)}, ["{data}: input 'word': the model takes integer token ids, got float32"]),
    ("shape", {"profile": np.zeros((11, 3))}, ["{data}: input 'profile': the model takes [batch, 2] float32, got shape [11, 3]"]),
    ("text", {"profile": np.array([["a", "b"]] * 11)}, ["{data}: 'profile' holds <U1 values, not numbers"]),
    ("counts", {"profile": np.zeros((10, 2))}, ["{data}: 'profile' has 10 samples but 'events' has 11"]),
    ("no samples", {k: np.zeros((0, *s), d) for k, s, d in [("events", (6, 3), np.float32), ("profile", (2,), np.float32),
                                                             ("word", (), np.int64), ("tokens", (4,), np.int64),
                                                             ("events_lengths", (), np.int64), ("churn", (1,), np.float32)]},
     ["{data}: no samples ('events' has 0 rows)"]),
    ("lengths dtype", {"events_lengths": np.ones(11)}, ["{data}: 'events_lengths' has float64 [11]; it needs one integer per sample [N]"]),
    ("lengths range", {"events_lengths": np.arange(11)},
     ["{data}: lengths of input 'events' must lie in [0, 6] (its timesteps); row 7 has 7"]),
    ("ids", {"tokens": np.full((11, 4), 9)}, ["{data}: input 'tokens': token ids must lie in [0, 4] (vocab_size 5), got ids from 9 to 9"]),
    ("NaN late", {"profile": np.where(np.arange(11)[:, None] == 9, np.nan, np.zeros((11, 2)))},
     ["{data}: input 'profile': holds NaN, inf or values beyond float32's range (first at profile[9, 0]); NaN and inf are not data"]),
]


@pytest.mark.parametrize(("changes", "lines"), [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES])
@pytest.mark.parametrize("out", ["out.npz", "out.csv", None])
def test_a_bad_input_file_is_one_line_per_problem_and_nothing_written(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                     changes: dict, lines: list[str], out: str | None) -> None:
    data, _, _ = save(tmp_path / "in.npz", 11, **changes)
    args = ["-o", str(tmp_path / out)] if out else []
    assert main(["predict", str(model), str(data), "--batch-size", "4", *args]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [line.format(data=data) for line in lines]
    assert captured.out == "" and sorted(p.name for p in tmp_path.iterdir()) == ["in.npz"]


@pytest.mark.parametrize(("name", "write", "line"), [
    ("in.csv", lambda p: p.write_text("1,2\n"),
     "{data}: a graph model reads a .npz input, one array per input (events, profile, word, tokens); got '.csv'"),
    ("in.npz", lambda p: p.write_bytes(b"not a zip"), "{data}: not an .npz archive"),
    ("in.npz", lambda p: p.mkdir(), "{data}: is a directory, not an input file"),
])
def test_an_input_that_is_no_npz_is_one_line(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name, write, line) -> None:
    data = tmp_path / name
    write(data)
    assert main(["predict", str(model), str(data)]) == 2
    assert capsys.readouterr().err == line.format(data=data) + "\n"


def test_a_damaged_member_is_found_before_any_output(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, _, _ = save(tmp_path / "in.npz", 3000)
    raw = bytearray(data.read_bytes())
    at = raw.index(b"profile.npy") + 20_000  # late in the stored profile array: its CRC no longer matches
    raw[at] ^= 0xFF
    data.write_bytes(bytes(raw))
    assert main(["predict", str(model), str(data), "--batch-size", "100"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == f"{data}: 'profile' is damaged (Bad CRC-32 for file 'profile.npy')\n"


# --- the real exporter's graphs, compiled from specs with fresh weights ---------------------


def test_a_per_step_output_is_cut_at_the_lengths_it_follows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = compiled(tmp_path / "add", ADD)
    arrays = add_data(tmp_path / "in.npz")
    capsys.readouterr()
    assert main(["predict", str(run), str(tmp_path / "in.npz")]) == 0
    header, rows = table(capsys.readouterr().out)
    assert header[:3] == ["answer_label", "answer_probability", "answer_p_0"] and len(header) == 16
    want = load(run / "model.onnx").predict(arrays)["answer"]
    steps = ((arrays["answer_in"] != 0) * np.arange(1, 5)).max(1)  # the decoder's: answer_in's ids
    assert [row[0].split() for row in rows] == [[str(c) for c in want[i, : steps[i]].argmax(-1)] for i in range(len(rows))]


def test_steps_a_convolution_changed_are_cut_where_the_spec_says(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = compiled(tmp_path / "conv", CONV)
    np.savez(tmp_path / "in.npz", events=np.ones((3, 5, 2), np.float32), events_lengths=np.array([1, 3, 5]))
    capsys.readouterr()
    assert main(["predict", str(run), str(tmp_path / "in.npz")]) == 0
    header, rows = table(capsys.readouterr().out)
    assert header == ["tags"] and [len(row[0].split()) for row in rows] == [0, 2, 4]  # kernel 2: one step less
    (tmp_path / "alone").mkdir()
    (run / "model.onnx").rename(tmp_path / "alone" / "model.onnx")
    assert main(["predict", str(tmp_path / "alone" / "model.onnx"), str(tmp_path / "in.npz")]) == 2
    assert capsys.readouterr().err == ("output 'tags' has (time-2)//1+1 steps, which a convolution made of its input's; "
                                       "to cut each row at its real steps, pass the run directory or --spec\n")
    assert main(["predict", str(tmp_path / "alone" / "model.onnx"), str(tmp_path / "in.npz"), "-o", str(tmp_path / "out.npz")]) == 0
    with np.load(tmp_path / "out.npz") as out:
        assert out["tags"].shape == (3, 4, 1) and out["events_lengths"].tolist() == [1, 3, 5]
        tags = out["tags"]
    assert main(["predict", str(tmp_path / "alone" / "model.onnx"), str(tmp_path / "in.npz"), "-o", str(tmp_path / "out.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), tags)  # a one-output graph: its output alone


def test_evaluate_scores_each_output_as_numpy_does(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = compiled(tmp_path / "two", TWO)
    rng = np.random.default_rng(5)
    n = 30
    arrays = {"events": rng.normal(size=(n, 5, 3)).astype(np.float32), "events_lengths": rng.integers(0, 6, size=n),
              "profile": rng.normal(size=(n, 2)).astype(np.float32), "kind": rng.integers(0, 3, size=n),
              "level": rng.normal(size=(n, 1)).astype(np.float32), "kind_classes": np.array(["a", "b", "c"])}
    np.savez(tmp_path / "val.npz", **arrays)
    capsys.readouterr()
    assert main(["evaluate", str(run), str(tmp_path / "val.npz"), "--json", "--per-sample", str(tmp_path / "each.csv")]) == 0
    result = json.loads(capsys.readouterr().out)
    out = load(run / "model.onnx").predict({k: arrays[k] for k in ("events", "profile")}, {"events": arrays["events_lengths"]})
    probs, level = out["kind"].astype(np.float64), out["level"].astype(np.float64)
    kind_losses = -np.log(np.clip(probs[np.arange(n), arrays["kind"]], 1e-7, 1 - 1e-7))
    level_losses = ((level - arrays["level"]) ** 2)[:, 0]
    assert list(result) == ["samples", "loss", "kind_loss", "kind_accuracy", "level_loss", "level_mae", "reports"]
    assert result["kind_loss"] == pytest.approx(kind_losses.mean(), rel=1e-6)
    assert result["level_loss"] == pytest.approx(level_losses.mean(), rel=1e-6)
    assert result["loss"] == pytest.approx(kind_losses.mean() + 0.5 * level_losses.mean(), rel=1e-6)
    assert result["kind_accuracy"] == pytest.approx((probs.argmax(1) == arrays["kind"]).mean())
    assert result["level_mae"] == pytest.approx(np.abs(level - arrays["level"]).mean(), rel=1e-6)
    assert list(result["reports"]) == ["kind"] and result["reports"]["kind"]["classes"] == ["a", "b", "c"]
    matrix = np.zeros((3, 3), int)
    np.add.at(matrix, (arrays["kind"], probs.argmax(1)), 1)
    assert result["reports"]["kind"]["confusion_matrix"] == matrix.tolist()
    with (tmp_path / "each.csv").open() as handle:
        each = list(csv.DictReader(handle))
    assert list(each[0]) == ["index", "loss", "kind_loss", "kind_true", "kind_predicted", "level_loss"]
    np.testing.assert_allclose([float(r["loss"]) for r in each], kind_losses + 0.5 * level_losses, rtol=1e-6)
    assert [r["kind_true"] for r in each] == ["abc"[k] for k in arrays["kind"]]
    assert main(["evaluate", str(run), str(tmp_path / "val.npz")]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0] == f"{tmp_path / 'val.npz'}: 30 samples" and text[1].startswith("loss ") and "level_mae" in text[1]
    assert text[3:5] == ["output 'kind':", "confusion matrix (samples; rows: true class, columns: predicted)"]


def test_evaluate_shifts_a_feedback_input_into_its_targets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = compiled(tmp_path / "add", ADD)
    arrays = add_data(tmp_path / "val.npz")
    capsys.readouterr()
    assert main(["evaluate", str(run), str(tmp_path / "val.npz"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    probs = load(run / "model.onnx").predict(arrays)["answer"].astype(np.float64)
    answer_in = arrays["answer_in"]
    lengths = ((answer_in != 0) * np.arange(1, 5)).max(1)
    scored = np.arange(4)[None, :] < lengths[:, None] - 1  # step t predicts step t + 1: the last real step has none
    target = np.roll(answer_in, -1, axis=1)
    picked = np.take_along_axis(probs, target[..., None], -1)[..., 0]
    assert result["loss"] == pytest.approx(-np.log(np.clip(picked, 1e-7, 1))[scored].mean(), rel=1e-6)
    assert result["accuracy"] == pytest.approx((probs.argmax(-1) == target)[scored].mean())
    assert np.sum(result["confusion_matrix"]) == scored.sum()


def test_evaluate_of_bad_data_names_the_argument(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = compiled(tmp_path / "two", TWO)
    np.savez(tmp_path / "val.npz", events=np.zeros((4, 5, 3), np.float32), profile=np.zeros((4, 3), np.float32),
             kind=np.zeros(4, np.int64))
    capsys.readouterr()
    assert main(["evaluate", str(run), str(tmp_path / "val.npz")]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and all(line.startswith(f"DATA ({tmp_path / 'val.npz'}): ") for line in lines)
    assert "no array 'level' (the targets of output 'level')" in lines[0] and "'profile' has 3 features" in lines[1]


def test_predict_and_evaluate_run_where_torch_and_onnx_cannot_be_imported(model: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "blocked"
    for name in ("torch", "onnx"):
        (blocker / name).mkdir(parents=True)
        (blocker / name / "__init__.py").write_text(f"raise ImportError('{name} is blocked in this test')\n")
    run = compiled(tmp_path / "two", TWO)  # compiled here, where onnx can be imported
    np.savez(tmp_path / "val.npz", events=np.zeros((4, 5, 3), np.float32), profile=np.zeros((4, 2), np.float32),
             kind=np.zeros(4, np.int64), level=np.zeros((4, 1), np.float32))
    data, inputs, lengths = save(tmp_path / "in.npz", 4)
    env = {**os.environ, "PYTHONPATH": str(blocker)}
    for args in (["predict", str(model), str(data), "-o", str(tmp_path / "out.npz")],
                 ["evaluate", str(run), str(tmp_path / "val.npz")]):
        done = subprocess.run([sys.executable, "-m", "rnnc", *args], env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
    with np.load(tmp_path / "out.npz") as out:
        np.testing.assert_array_equal(out["churn"], load(model).predict(inputs, lengths)["churn"])
    check = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True, check=False)
    assert "blocked in this test" in check.stderr  # the blocker really blocks


def test_evaluate_equals_the_trainers_test_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    n = 48
    arrays = {"events": rng.normal(size=(n, 5, 3)).astype(np.float32), "events_lengths": rng.integers(1, 6, size=n),
              "profile": rng.normal(size=(n, 2)).astype(np.float32), "kind": rng.integers(0, 3, size=n),
              "level": rng.normal(size=(n, 1)).astype(np.float32)}
    np.savez(tmp_path / "train.npz", **arrays)
    (tmp_path / "spec.yaml").write_text(TWO + "data: {train: train.npz, test: train.npz}\n")
    assert main(["train", str(tmp_path / "spec.yaml"), "-o", str(tmp_path / "run"), "--no-progress"]) == 0
    test_line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("test "))
    logged = dict(zip(test_line.split()[1::2], map(float, test_line.split()[2::2]), strict=True))
    assert main(["evaluate", str(tmp_path / "run"), str(tmp_path / "train.npz"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert list(logged) == [k for k in result if k not in ("samples", "reports")]
    for name, value in logged.items():
        assert result[name] == pytest.approx(value, abs=1.5e-4), name


def test_the_runtime_and_predict_agree_on_the_churn_example(tmp_path: Path) -> None:
    churn = Path("/tmp/v2/churn.yaml")
    spec = churn.read_text() if churn.is_file() else None
    if spec is None:
        pytest.skip("the DESIGN.md example is not on this machine")
    run = compiled(tmp_path / "churn", spec)
    rng = np.random.default_rng(2)
    arrays = {"events": rng.normal(size=(7, 9, 12)).astype(np.float32), "events_lengths": rng.integers(0, 10, size=7),
              "profile": rng.normal(size=(7, 5)).astype(np.float32)}
    np.savez(tmp_path / "in.npz", **arrays)
    assert main(["predict", str(run), str(tmp_path / "in.npz"), "-o", str(tmp_path / "out.npz"), "--batch-size", "2"]) == 0
    predictor = load(run / "model.onnx")
    assert isinstance(predictor, GraphPredictor)
    with np.load(tmp_path / "out.npz") as out:
        np.testing.assert_array_equal(
            out["churn"], predictor.predict({"events": arrays["events"], "profile": arrays["profile"]},
                                            {"events": arrays["events_lengths"]})["churn"])
