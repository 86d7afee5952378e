"""Per-step outputs and graphs train on batches cut to their longest sequences.

A sequence tagger's targets and mask, and every sequence input of a graph with the
targets of the per-step outputs that follow it, are cut where the batch's longest
sequence ends. Nothing counted changes: the weights and logs equal those of full-width
batches to float tolerance, and the same rows read from disk (cut by the reader, not the
trainer) train the same weights to the bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import rnnc_torch.graph_trainer as graph_trainer_module
import rnnc_torch.trainer as trainer_module
from rnnc.data import load_training_data
from rnnc.rows_dataset import cut_targets, cuts_to_longest
from rnnc.spec import load_model
from rnnc_torch.graph_trainer import GraphTrainer
from rnnc_torch.trainer import Trainer
from seq2seq_spec import seq2seq_spec
from test_npy_dir import STEPS_GRAPH, ragged, same, same_from_disk, spec, train, write_dir

TAGGER = {"layers": [{"type": "gru", "units": 5, "return_sequences": True},
                     {"type": "dense", "units": 2, "activation": "softmax"}],
          "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"],
          "training": {"epochs": 2, "batch_size": 4, "seed": 3, "validation_split": 0.25}}


def fit(path: Path) -> tuple[dict[str, torch.Tensor], list[dict], list[dict[str, int]]]:
    """Train the spec at `path` in this process: its weights, its logs, and the time
    axis of every input the module saw, per training forward pass."""
    model = load_model(path)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    trainer = (GraphTrainer if model.graph is not None else Trainer)(model)
    files = load_training_data(model)
    widths: list[dict[str, int]] = []
    forward = trainer.module.forward

    def spy(x: object, *args: object, **kwargs: object) -> object:
        named = x if isinstance(x, dict) else {"x": x}
        if trainer.module.training:  # training steps, not validation
            widths.append({name: int(t.shape[1]) for name, t in named.items() if t.dim() > 1})
        return forward(x, *args, **kwargs)

    trainer.module.forward = spy  # type: ignore[method-assign]
    logs: list[dict] = []
    trainer.run(files.train, files.validation, progress=False, hooks=[lambda _, epoch: logs.append(dict(epoch))])
    return {k: v.clone() for k, v in trainer.module.state_dict().items()}, logs, widths


def full_width(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches at the file's whole time axis, as before they were cut."""
    monkeypatch.setattr(trainer_module, "cuts_to_longest", lambda model: False)
    monkeypatch.setattr(graph_trainer_module, "cuts_to_longest", lambda model: False)


def close(cut: dict[str, torch.Tensor], full: dict[str, torch.Tensor]) -> None:
    assert cut.keys() == full.keys()
    for name in cut:
        torch.testing.assert_close(cut[name], full[name], rtol=1e-5, atol=1e-6, msg=name)


def close_logs(cut: list[dict], full: list[dict]) -> None:
    assert [sorted(epoch) for epoch in cut] == [sorted(epoch) for epoch in full]
    for a, b in zip(cut, full):
        for key in a.keys() - {"time", "lr"}:  # the time it took differs
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key


def test_a_tagger_cuts_its_targets_with_its_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = ragged(n=30, steps=12, seed=6)
    np.savez(tmp_path / "train.npz", x=data["x"], y=data["tags"], lengths=data["lengths"])
    path = spec(tmp_path, "train.npz", **TAGGER)
    cut, cut_logs, widths = fit(path)
    assert min(w["x"] for w in widths) < 12  # some batches ran short of the file's 12 steps
    full_width(monkeypatch)
    full, full_logs, full_widths = fit(path)
    assert {w["x"] for w in full_widths} == {12}
    close(cut, full)
    close_logs(cut_logs, full_logs)
    assert "val_accuracy" in cut_logs[-1]


def test_a_tagger_from_disk_trains_the_same_weights(tmp_path: Path) -> None:
    data = ragged(n=30, steps=12, seed=7)
    arrays = {"x": data["x"], "y": data["tags"], "lengths": data["lengths"]}
    np.savez(tmp_path / "train.npz", **arrays)
    write_dir(tmp_path / "train", arrays)
    same(train(spec(tmp_path, "train.npz", **TAGGER), tmp_path / "a"), train(spec(tmp_path, "train", **TAGGER), tmp_path / "b"))


def digits(rng: np.random.Generator, n: int, shortest: int, longest: int, width: int, start: int | None = None) -> np.ndarray:
    """`n` rows of digit ids (1-10), each of a random length, padded with 0 to `width`."""
    ids = np.zeros((n, width), np.int64)
    for row, length in enumerate(rng.integers(shortest, longest + 1, n)):
        ids[row, :length] = rng.integers(1, 11, length)
        if start is not None:
            ids[row, 0] = start
    return ids


@pytest.fixture
def seq2seq(tmp_path: Path) -> Path:
    rng = np.random.default_rng(8)
    np.savez(tmp_path / "pairs.npz", question=digits(rng, 36, 1, 6, 11), answer_in=digits(rng, 36, 2, 5, 9, start=12))
    path = tmp_path / "seq2seq.yaml"
    path.write_text(seq2seq_spec(rest="optimizer: {type: adam, lr: 0.02}\n"
                                      "training: {epochs: 2, batch_size: 5, seed: 2, validation_split: 0.25}\n"
                                      "data: {train: pairs.npz}\n"))
    return path


def test_a_graph_cuts_each_input_and_the_outputs_that_follow_it(seq2seq: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = load_model(seq2seq)
    assert cuts_to_longest(model) and cut_targets(model) == {"answer": "answer_in"}
    cut, cut_logs, widths = fit(seq2seq)
    assert min(w["question"] for w in widths) < 11 and min(w["answer_in"] for w in widths) < 9
    assert len({(w["question"], w["answer_in"]) for w in widths}) > 2  # each input to its own longest
    full_width(monkeypatch)
    full, full_logs, full_widths = fit(seq2seq)
    assert {(w["question"], w["answer_in"]) for w in full_widths} == {(11, 9)}
    close(cut, full)
    close_logs(cut_logs, full_logs)
    assert "val_accuracy" in cut_logs[-1]


def test_a_graph_from_disk_reads_its_per_step_targets_cut(tmp_path: Path) -> None:
    data = ragged(n=40, steps=16, seed=9)
    same_from_disk(tmp_path, STEPS_GRAPH, {"events": data["x"], "events_lengths": data["lengths"],
                                           "profile": np.random.default_rng(4).normal(size=(40, 2)).astype(np.float32),
                                           "steps": data["x"][:, :, :1].cumsum(1), "churn": data["y"]})
    _, _, widths = fit(tmp_path / "train.yaml")
    assert min(w["events"] for w in widths) < 16


def test_conv1d_keeps_the_full_width(tmp_path: Path) -> None:
    np.savez(tmp_path / "train.npz", **{k: v for k, v in ragged(n=12, steps=8).items() if k != "tags"})
    conv = spec(tmp_path, "train.npz", layers=[{"type": "conv1d", "filters": 3, "kernel_size": 2},
                                                 {"type": "gru", "units": 3}, {"type": "dense", "units": 1, "activation": "sigmoid"}])
    assert not cuts_to_longest(load_model(conv))


def test_tbptt_chunks_a_cut_batch_up_to_its_longest_alike_from_disk(tmp_path: Path) -> None:
    data = ragged(n=30, steps=12, seed=10)
    arrays = {"x": data["x"], "y": data["tags"], "lengths": data["lengths"]}
    np.savez(tmp_path / "train.npz", **arrays)
    write_dir(tmp_path / "train", arrays)
    tagger = dict(TAGGER, training={**TAGGER["training"], "tbptt": 5})
    memory = spec(tmp_path, "train.npz", **tagger)
    same(train(memory, tmp_path / "a"), train(spec(tmp_path, "train", **tagger), tmp_path / "b"))
    _, _, widths = fit(memory)
    assert {w["x"] for w in widths} <= {1, 2, 3, 4, 5} and 5 in {w["x"] for w in widths}
    assert {w["x"] for w in widths} - {5}  # a batch's last chunk ends at its longest sequence, not at 12


TWO = {
    "rnnc": 2, "name": "two",
    "inputs": {"a": {"shape": [None, 3]}, "b": {"shape": [None, 3]}},
    "layers": [{"name": "ra", "type": "gru", "units": 3, "return_sequences": True, "input": "a"},
               {"name": "ya", "type": "dense", "units": 1},
               {"name": "rb", "type": "lstm", "units": 3, "return_sequences": True, "input": "b"},
               {"name": "yb", "type": "dense", "units": 1}],
    "outputs": {"ya": {"loss": "mse"}, "yb": {"loss": "mse"}},
    "optimizer": {"type": "adam", "lr": 0.01}, "training": {"epochs": 2, "batch_size": 6, "seed": 1, "tbptt": 4},
}


def test_tbptt_cuts_a_graphs_inputs_to_the_longest_of_them(tmp_path: Path) -> None:
    first, second = ragged(n=24, steps=10, seed=11), ragged(n=24, steps=10, seed=12)
    second["lengths"] = np.minimum(second["lengths"], 4)  # b's sequences end long before a's
    second["x"][np.arange(10)[None, :] >= second["lengths"][:, None]] = 0.0
    arrays = {"a": first["x"], "a_lengths": first["lengths"], "b": second["x"], "b_lengths": second["lengths"],
              "ya": first["x"][:, :, :1], "yb": second["x"][:, :, 1:2]}
    same_from_disk(tmp_path, TWO, arrays)
    _, _, widths = fit(tmp_path / "train.npz.yaml")
    assert all(w["a"] == w["b"] for w in widths)  # chunked at the same steps
