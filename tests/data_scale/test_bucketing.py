"""Batches cut to their longest sequence, and `training.bucket_by_length`.

Cutting a batch's time axis at its longest sequence must not change what is trained
(lengths mask every padded step): the weights equal those of full-width batches to
float tolerance (sums over fewer padded zeros round differently). Bucketing changes
the batches: the same seed gives the same ones, every row is in one batch per epoch,
and a batch holds sequences of similar lengths. The spec refuses it where it means
nothing, at the key's position.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import rnnc_torch.batching as batching_module
import rnnc_torch.trainer as trainer_module
from rnnc.data import load_training_data
from rnnc.errors import SpecError
from rnnc.spec import load_model
from rnnc_torch.batching import BUCKET_BATCHES, batch_longest, bucketed
from rnnc_torch.trainer import Trainer
from test_npy_dir import ragged, spec, write_dir


def test_batch_longest_is_each_batch_max() -> None:
    lengths = torch.tensor([3, 1, 7, 2, 2, 5, 1])
    assert batch_longest(lengths, 3) == [7, 5, 1]
    assert batch_longest(lengths, 7) == [7]
    assert batch_longest(None, 3) is None


def reference_buckets(order: np.ndarray, lengths: np.ndarray, batch: int, drawn: np.ndarray) -> np.ndarray:
    span = batch * BUCKET_BATCHES
    grouped = np.concatenate([order[s : s + span][np.argsort(lengths[order[s : s + span]], kind="stable")]
                              for s in range(0, len(order), span)])
    whole = len(order) // batch
    return np.concatenate([grouped[: whole * batch].reshape(whole, batch)[drawn].reshape(-1), grouped[whole * batch :]])


def test_bucketed_sorts_chunks_and_shuffles_whole_batches() -> None:
    rng = np.random.default_rng(0)
    n, batch = 1234, 8
    lengths = torch.from_numpy(rng.integers(1, 200, n))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(1))
    got = bucketed(order, lengths, batch, torch.Generator().manual_seed(2))
    drawn = torch.randperm(n // batch, generator=torch.Generator().manual_seed(2)).numpy()
    np.testing.assert_array_equal(got.numpy(), reference_buckets(order.numpy(), lengths.numpy(), batch, drawn))
    assert sorted(got.tolist()) == list(range(n))  # every row once
    again = bucketed(order, lengths, batch, torch.Generator().manual_seed(2))
    assert torch.equal(got, again)
    spans = lengths[got[: (n // batch) * batch]].view(-1, batch)
    shuffled = lengths[order[: (n // batch) * batch]].view(-1, batch)
    assert (spans.amax(1) - spans.amin(1)).float().mean() < 0.2 * (shuffled.amax(1) - shuffled.amin(1)).float().mean()


def body(train: str, **training: object) -> dict:
    return {
        "rnnc": 1, "name": "bucket", "input": {"shape": [None, 3]},
        "layers": [{"type": "gru", "units": 5}, {"type": "dense", "units": 1, "activation": "sigmoid"}],
        "loss": "binary_crossentropy", "optimizer": {"type": "adam", "lr": 0.01}, "metrics": ["accuracy"],
        "training": {"epochs": 2, "batch_size": 4, "seed": 5, **training}, "data": {"train": train},
    }


def fit(tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch | None = None, **training: object) -> tuple[dict, list]:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body(name if name.endswith("npz") else "train", **training)))
    model = load_model(path)
    torch.set_num_threads(1)
    trainer = Trainer(model)
    files = load_training_data(model)
    widths: list[int] = []
    forward = trainer.module.forward

    def spy(x: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        widths.append(int(x.shape[1]))
        return forward(x, *args, **kwargs)

    trainer.module.forward = spy  # type: ignore[method-assign]
    trainer.run(files.train, progress=False)
    return {k: v.clone() for k, v in trainer.module.state_dict().items()}, widths


@pytest.fixture
def data(tmp_path: Path) -> dict[str, np.ndarray]:
    arrays = ragged(n=26, steps=9, seed=4)
    arrays.pop("tags")
    np.savez(tmp_path / "train.npz", **arrays)
    write_dir(tmp_path / "train", arrays)
    return arrays


def test_cut_batches_train_the_full_width_weights(tmp_path: Path, data: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    cut, widths = fit(tmp_path, "train.npz")
    order = torch.randperm(26, generator=torch.Generator().manual_seed(trainer_module.epoch_seed(5, 1)))
    expected = [int(data["lengths"][order[s : s + 4].numpy()].max()) for s in range(0, 26, 4)]
    assert widths[: len(expected)] == expected and min(expected) < 9  # epoch 1's batches, each at its longest
    monkeypatch.setattr(trainer_module, "cuts_to_longest", lambda model: False)
    full, full_widths = fit(tmp_path, "train.npz")
    assert set(full_widths) == {9}
    for name in cut:
        torch.testing.assert_close(cut[name], full[name], rtol=1e-5, atol=1e-6, msg=name)


def test_bucketing_is_deterministic_and_reads_the_same_from_disk(tmp_path: Path, data: dict) -> None:
    first, widths = fit(tmp_path, "train.npz", bucket_by_length=True)
    second, _ = fit(tmp_path, "train.npz", bucket_by_length=True)
    disk, disk_widths = fit(tmp_path, "train", bucket_by_length=True)
    plain, plain_widths = fit(tmp_path, "train.npz")
    assert disk_widths == widths
    for name in first:
        assert torch.equal(first[name], second[name]) and torch.equal(first[name], disk[name]), name
    assert sum(widths) < sum(plain_widths)  # similar lengths together pad less
    assert any(not torch.equal(first[name], plain[name]) for name in first)  # other batches, other weights


def test_every_row_once_per_epoch(tmp_path: Path, data: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    orders: list[list[int]] = []

    def keep(order: torch.Tensor, *args: object) -> torch.Tensor:
        out = bucketed(order, *args)  # type: ignore[arg-type]
        orders.append(out.tolist())
        return out

    monkeypatch.setattr(batching_module, "bucketed", keep)
    fit(tmp_path, "train.npz", bucket_by_length=True)
    assert len(orders) == 2 and orders[0] != orders[1]
    assert all(sorted(order) == list(range(26)) for order in orders)


@pytest.mark.parametrize(("change", "message"), [
    ({"input": {"shape": [9, 3]}}, "bucket_by_length sorts batches by sequence length, but the spec's input has a fixed length"),
    ({"training": {"bucket_by_length": True, "shuffle": False}}, "bucket_by_length draws batches from each epoch's shuffled order"),
    ({"training": {"bucket_by_length": "yes"}}, "training.bucket_by_length: expected true or false, got 'yes'"),
])
def test_refused_where_it_means_nothing(tmp_path: Path, change: dict, message: str) -> None:
    doc = body("train.npz", bucket_by_length=True)
    doc.update(change)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "bucket_by_length" in text)
    with pytest.raises(SpecError) as caught:
        load_model(path)
    assert any(got.startswith(f"{path}:{line}:") and message in got for got in caught.value.lines()), caught.value.lines()
