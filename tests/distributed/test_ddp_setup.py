"""The pieces of a distributed run that need no process group: the shards, the
global-batch rule and the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ddp_runs import write_spec

from rnnc import ir
from rnnc.cli import main
from rnnc.errors import UsageError
from rnnc.shapes import infer_nodes
from rnnc_torch.distributed import DistributedTrainer, World, shard_order
from rnnc_torch.trainer import epoch_seed


def _world(rank: int, size: int) -> World:
    return World(rank, size, rank, torch.device("cpu"))


@pytest.mark.parametrize(("n", "size", "shuffle"), [(96, 2, True), (97, 2, True), (10, 4, False), (3, 4, True), (1000, 3, True)])
def test_shards_cover_the_data_evenly(n: int, size: int, shuffle: bool) -> None:
    shards = [shard_order(n, _world(rank, size), seed=5, epoch=2, shuffle=shuffle) for rank in range(size)]
    per_rank = -(-n // size)
    assert all(len(shard) == per_rank for shard in shards)
    seen = torch.cat(shards)
    assert set(seen.tolist()) == set(range(n))
    assert len(seen) - n == per_rank * size - n  # only the padding repeats


@pytest.mark.parametrize(("size", "batch"), [(2, 16), (4, 32), (3, 12)])
def test_local_batches_make_up_the_single_process_global_batch(size: int, batch: int) -> None:
    """Step k of every rank, together, is step k of one process (DistributedSampler's
    strided split of the one permutation)."""
    n = 120
    single = torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed(5, 3)))
    local = batch // size
    shards = [shard_order(n, _world(rank, size), seed=5, epoch=3) for rank in range(size)]
    for step in range(-(-n // batch)):
        together = sorted(torch.cat([s[step * local : (step + 1) * local] for s in shards]).tolist())
        assert together == sorted(single[step * batch : (step + 1) * batch].tolist())


def test_epochs_reshuffle_and_seed_decides() -> None:
    world = _world(0, 2)
    assert not torch.equal(shard_order(50, world, seed=1, epoch=1), shard_order(50, world, seed=1, epoch=2))
    assert torch.equal(shard_order(50, world, seed=1, epoch=1), shard_order(50, world, seed=1, epoch=1))


def test_global_batch_must_divide_among_workers() -> None:
    input_ = ir.Input(shape=(4, 1))
    nodes, _ = infer_nodes(input_, [ir.SimpleRNN(units=2), ir.Dense(units=1)])
    model = ir.Model(name="t", input=input_, nodes=tuple(nodes), loss=ir.Loss("mse"), optimizer=ir.Optimizer("sgd"),
                     metrics=(), training=ir.Training(batch_size=30), spec_hash="t")
    with pytest.raises(UsageError, match=r"training.batch_size 30 is the global batch and must divide among the 4 workers \(e.g. --set training.batch_size=28\)"):
        DistributedTrainer(model, "cpu", _world(0, 4))


@pytest.mark.parametrize(
    ("nproc", "env", "message"),
    [
        ("0", {}, "--nproc 0: expected a number of processes >= 1"),
        ("2", {"WORLD_SIZE": "2", "RANK": "0"}, "--nproc: this process is already a torchrun worker"),
    ],
)
def test_bad_nproc_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                              nproc: str, env: dict[str, str], message: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    spec = write_spec(tmp_path)
    assert main(["train", str(spec), "-o", str(tmp_path / "run"), "--nproc", nproc]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("env", "writes"),
    [({}, True), ({"WORLD_SIZE": "2", "RANK": "0"}, True), ({"WORLD_SIZE": "2", "RANK": "1"}, False)],
    ids=["one process", "rank 0", "rank 1"],
)
def test_only_the_process_that_writes_the_run_directory_says_so(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], writes: bool) -> None:
    """What `rnnc train` asks before it exports model.onnx: once per run, by rank 0."""
    import rnnc_torch

    for key in ("WORLD_SIZE", "RANK"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert rnnc_torch.backend.writes_run_dir() is writes
