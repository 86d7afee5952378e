"""A graph's data files (spec version 2): arrays named after its inputs and outputs.

Each bad file is judged twice with the same words: by `rnnc check` from the headers
alone, placed at the input or output the array belongs to, and by `rnnc train`, which
then exits 2 and writes nothing. The values a header cannot show (lengths, ids, NaN,
class ids) are `rnnc train`'s. What the loaded dataset holds (lengths from ids, the
shifted feedback targets, masks, normalization's statistics) is compared with numpy
written here.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from seq2seq_spec import seq2seq_spec

from rnnc.cli import main
from rnnc.errors import DataError
from rnnc.graph_data import adapt_normalization, graph_dataset
from rnnc.spec import model_from_text

CHURN = """\
rnnc: 2
name: churn
inputs:
  events: {shape: [null, 3]}
  profile: {shape: [2]}
layers:
  - {name: enc, type: lstm, units: 4, input: events}
  - {name: both, type: concatenate, input: [enc, profile]}
  - {name: churn, type: dense, units: 1, activation: sigmoid}
outputs:
  churn: {loss: binary_crossentropy, metrics: [auc]}
optimizer: adam
training: {epochs: 1, batch_size: 4}
data: {train: data/train.npz}
"""

ADD = seq2seq_spec(name='add', rest='optimizer: adam\ntraining: {epochs: 1, batch_size: 4}\ndata: {train: data/train.npz}\n')

N, T = 6, 5


def f32(*shape: int) -> np.ndarray:
    return np.zeros(shape, np.float32)


def churn_arrays(**changes: np.ndarray | None) -> dict[str, np.ndarray]:
    arrays = {"events": f32(N, T, 3), "events_lengths": np.full(N, T), "profile": f32(N, 2), "churn": f32(N, 1)}
    arrays.update(changes)
    return {k: v for k, v in arrays.items() if v is not None}


def compiled(spec: str):
    """The spec without its data file (whose arrays a test hands over itself)."""
    return model_from_text(spec.replace("data: {train: data/train.npz}\n", ""))


def run_cli(tmp_path: Path, spec: str, arrays: dict[str, np.ndarray], *argv: str) -> tuple[int, list[str]]:
    """Write the spec and data/train.npz, run `rnnc ARGV... spec.yaml`, return (status, stderr lines)."""
    (tmp_path / "data").mkdir(exist_ok=True)
    np.savez(tmp_path / "data" / "train.npz", **arrays)
    (tmp_path / "spec.yaml").write_text(spec)
    capture = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stderr", capture)
        status = main([argv[0], str(tmp_path / "spec.yaml"), *argv[1:]])
    return status, capture.getvalue().splitlines()


# (arrays, [(where rnnc check places it, the message after the file's name)])
LAYOUT_CASES = {
    "missing input": (churn_arrays(profile=None), [
        ("inputs.profile", "no array 'profile' (input 'profile' float32 [N, 2]); arrays: churn, events, events_lengths")]),
    "missing target": (churn_arrays(churn=None), [
        ("outputs.churn", "no array 'churn' (the targets of output 'churn'); arrays: events, events_lengths, profile")]),
    "extra array": (churn_arrays(event_lengths=np.full(N, T)), [
        ("data.train", "unexpected array 'event_lengths' (did you mean 'events_lengths'?); "
                       "this spec reads: events, profile, events_lengths, churn, churn_classes")]),
    "features": (churn_arrays(events=f32(N, T, 4)), [
        ("inputs.events", "'events' has 4 features, input 'events' needs 3 (float32 [N, T, 3])")]),
    "rank": (churn_arrays(profile=f32(N, 2, 1)), [
        ("inputs.profile", "'profile' has shape [6, 2, 1], input 'profile' needs float32 [N, 2]")]),
    "dtype": (churn_arrays(profile=np.zeros((N, 2), "U1")), [
        ("inputs.profile", "'profile' has dtype <U1, input 'profile' needs numbers (float32)")]),
    "lengths dtype": (churn_arrays(events_lengths=np.full(N, 5.0)), [
        ("inputs.events", "'events_lengths' has dtype float64, expected integers")]),
    "samples": (churn_arrays(profile=f32(N + 1, 2)), [
        ("data.train", "'profile' has 7 samples but 'events' has 6")]),
    "targets": (churn_arrays(churn=f32(N, 2)), [
        ("outputs.churn", "'churn' has shape [6, 2], binary_crossentropy over output 'churn' [1] needs [N] or [N, 1]")]),
    "classes": (churn_arrays(churn_classes=np.array(["stay", "go", "maybe"])), [
        ("outputs.churn", "'churn_classes' names 3 classes, output 'churn' has 2")]),
    "two problems": (churn_arrays(events=f32(N, T, 4), churn=f32(N, 3)), [
        ("inputs.events", "'events' has 4 features, input 'events' needs 3 (float32 [N, T, 3])"),
        ("outputs.churn", "'churn' has shape [6, 3], binary_crossentropy over output 'churn' [1] needs [N] or [N, 1]")]),
}


@pytest.mark.parametrize("case", LAYOUT_CASES)
def test_check_names_layout_problems_from_the_headers(case: str, tmp_path: Path) -> None:
    arrays, expected = LAYOUT_CASES[case]
    status, lines = run_cli(tmp_path, CHURN, arrays, "check", "-q")
    assert status == 2
    placed = [re.sub(r"^.*spec\.yaml:\d+:\d+: ", "", line) for line in lines]
    assert placed == [f"{where}: data/train.npz: {message}" for where, message in expected]


@pytest.mark.parametrize("case", LAYOUT_CASES)
def test_train_names_the_same_problems_and_writes_nothing(case: str, tmp_path: Path) -> None:
    arrays, expected = LAYOUT_CASES[case]
    status, lines = run_cli(tmp_path, CHURN, arrays, "train", "-o", str(tmp_path / "run"), "--no-progress")
    assert status == 2
    assert lines == [f"{tmp_path / 'data' / 'train.npz'}: {message}" for _, message in expected]
    assert not (tmp_path / "run").exists()


# values a header cannot show: (spec, arrays, the message after the file's name)
VALUE_CASES = {
    "lengths past the time axis": (CHURN, churn_arrays(events_lengths=np.array([5, 5, 6, 1, 0, 2])),
                                   "'events_lengths' must lie in [0, 5] (the padded time axis of 'events'), sample 2 has length 6"),
    "negative lengths": (CHURN, churn_arrays(events_lengths=np.array([5, -1, 5, 1, 0, 2])),
                         "'events_lengths' must lie in [0, 5] (the padded time axis of 'events'), sample 1 has length -1"),
    "NaN input": (CHURN, churn_arrays(profile=np.where(np.arange(2 * N).reshape(N, 2) == 7, np.nan, 0).astype(np.float32)),
                  "'profile' holds 1 NaN or inf values (first: NaN at [3, 1])"),
    "binary labels": (CHURN, churn_arrays(churn=np.full((N, 1), 2.0, np.float32)),
                      "'churn' holds values from 2 to 2; binary_crossentropy needs labels in [0, 1]"),
    "token ids": (ADD, {"question": np.full((N, T), 14), "answer_in": np.ones((N, T), np.int64)},
                  "'question' holds token ids from 14 to 14; they must lie in [0, 13] (vocab_size 14)"),
    "class ids": (ADD, {"question": np.ones((N, T), np.int64), "answer_in": np.ones((N, T), np.int64),
                        "answer": np.full((N, T), 14)},
                  "'answer' holds class ids from 14 to 14, output 'answer' has 14 classes [0, 13]"),
}


@pytest.mark.parametrize("case", VALUE_CASES)
def test_train_checks_the_values(case: str, tmp_path: Path) -> None:
    spec, arrays, message = VALUE_CASES[case]
    assert run_cli(tmp_path, spec, arrays, "check", "-q") == (0, [])  # headers alone cannot tell
    status, lines = run_cli(tmp_path, spec, arrays, "train", "-o", str(tmp_path / "run"), "--no-progress")
    assert (status, lines) == (2, [f"{tmp_path / 'data' / 'train.npz'}: {message}"])
    assert not (tmp_path / "run").exists()


def test_check_passes_good_files_and_validation_split_is_checked(tmp_path: Path) -> None:
    assert run_cli(tmp_path, CHURN, churn_arrays(), "check", "-q") == (0, [])
    status, lines = run_cli(tmp_path, CHURN.replace("batch_size: 4}", "batch_size: 4, validation_split: 0.9}"),
                            churn_arrays(), "check", "-q")
    assert status == 2
    assert [re.sub(r"^.*spec\.yaml:\d+:\d+: ", "", line) for line in lines] == [
        "training.validation_split: data/train.npz: validation_split 0.9 of 6 samples leaves no training samples"]


def test_lengths_come_from_ids_and_feedback_targets_are_the_input_shifted() -> None:
    model = compiled(ADD)
    question = np.array([[3, 11, 4, 0, 0], [5, 0, 0, 0, 0], [2, 11, 0, 7, 0]])
    answer_in = np.array([[12, 8, 13, 0, 0], [12, 6, 3, 13, 0], [12, 13, 0, 0, 0]])
    data = graph_dataset(model, {"question": question, "answer_in": answer_in}, "t")
    assert data.lengths["question"].tolist() == [3, 1, 4]  # after the last non-zero id
    assert data.lengths["answer_in"].tolist() == [3, 4, 2]
    assert data.targets["answer"].tolist() == [[8, 13, 0, 0, 0], [6, 3, 13, 0, 0], [13, 0, 0, 0, 0]]
    # the step at each answer's last real id has no next id: unscored, as every padded one
    assert data.masks["answer"].tolist() == [[1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]]


def test_given_targets_and_lengths_win() -> None:
    model = compiled(ADD)
    ids = np.array([[12, 8, 13, 9], [12, 6, 0, 0]])
    targets = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    data = graph_dataset(model, {"question": ids, "question_lengths": np.array([4, 1]), "answer_in": ids,
                                 "answer_in_lengths": np.array([3, 2]), "answer": targets}, "t")
    assert data.lengths["question"].tolist() == [4, 1]
    assert data.masks["answer"].tolist() == [[1, 1, 1, 0], [1, 1, 0, 0]]
    assert data.targets["answer"].tolist() == [[1, 2, 3, 0], [5, 6, 0, 0]]  # zero where nothing counts


def test_static_outputs_have_no_mask_and_inputs_without_lengths_are_full() -> None:
    model = compiled(CHURN)
    data = graph_dataset(model, churn_arrays(events_lengths=None, churn=np.arange(N) % 2), "t")
    assert data.lengths == {} and data.masks == {}
    assert data.targets["churn"].shape == (N, 1) and data.targets["churn"].dtype == np.float32


def test_layout_problems_are_all_reported_together() -> None:
    model = compiled(CHURN)
    with pytest.raises(DataError) as err:
        graph_dataset(model, churn_arrays(profile=None, extra=f32(N)), "f.npz")
    assert str(err.value).splitlines() == [
        "f.npz: no array 'profile' (input 'profile' float32 [N, 2]); arrays: churn, events, events_lengths, extra",
        "f.npz: unexpected array 'extra'; this spec reads: events, profile, events_lengths, churn, churn_classes",
    ]


def test_select_and_split_keep_every_array_aligned() -> None:
    model = compiled(ADD)
    ids = np.arange(1, 11)[:, None] * np.ones((1, 3), np.int64)
    ids[:, 2] = 0
    data = graph_dataset(model, {"question": ids, "answer_in": ids}, "f.npz")
    first, last = data.split(0.2)
    assert (len(first), len(last)) == (8, 2)
    assert last.inputs["question"][:, 0].tolist() == [9, 10] and last.targets["answer"][:, 0].tolist() == [9, 10]
    assert last.lengths["answer_in"].tolist() == [2, 2] and last.masks["answer"].shape == (2, 3)
    assert last.origin == "f.npz (last 0.2)"


NORMALIZED = """\
rnnc: 2
name: normalized
inputs:
  events: {shape: [null, 3]}
  profile: {shape: [2]}
layers:
  - {name: norm, type: normalization, input: events}
  - {name: enc, type: gru, units: 4}
  - {name: pnorm, type: normalization, input: profile}
  - {name: both, type: concatenate, input: [enc, pnorm]}
  - {name: y, type: dense, units: 1}
outputs:
  y: {loss: mse}
optimizer: adam
"""


def test_normalization_adapts_over_real_steps_only() -> None:
    model = model_from_text(NORMALIZED)
    rng = np.random.default_rng(3)
    lengths = np.array([4, 1, 0, 3, 2])
    events = rng.normal(5.0, 3.0, (5, 4, 3)).astype(np.float32)
    events[1, 1:] = 1e6  # padding, whatever it holds, does not count
    profile = rng.normal(-2.0, 0.5, (5, 2)).astype(np.float32)
    data = graph_dataset(model, {"events": events, "events_lengths": lengths, "profile": profile, "y": f32(5, 1)}, "t")
    stats = adapt_normalization(model, data)
    real = np.concatenate([events[i, :n] for i, n in enumerate(lengths)]).astype(np.float64)
    assert sorted(stats) == ["layers.0.mean", "layers.0.variance", "layers.2.mean", "layers.2.variance"]
    np.testing.assert_allclose(stats["layers.0.mean"], real.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats["layers.0.variance"], real.var(0), rtol=1e-6)  # population variance
    np.testing.assert_allclose(stats["layers.2.mean"], profile.astype(np.float64).mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats["layers.2.variance"], profile.astype(np.float64).var(0), rtol=1e-6)
    assert all(v.dtype == np.float32 for v in stats.values())


def test_a_feedback_output_needs_its_targets_or_its_input() -> None:
    with pytest.raises(DataError) as err:
        graph_dataset(compiled(ADD), {"question": np.ones((N, T), np.int64)}, "f.npz")
    assert str(err.value).splitlines() == [
        "f.npz: no array 'answer_in' (input 'answer_in' int64 [N, T]); arrays: question",
        "f.npz: no array 'answer' (the targets of output 'answer', or input 'answer_in' to shift); arrays: question",
    ]
