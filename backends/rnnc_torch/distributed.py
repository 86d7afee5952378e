"""Data-parallel training on `torch.distributed`: workers started by torchrun, DDP.

rnnc brings no launcher, rendezvous or wire protocol of its own. `launch` hands
`rnnc train ... --nproc N` to torchrun's own entry (`torch.distributed.run`, standalone
rendezvous on this machine); across machines the user runs `torchrun ... -m rnnc train`.
A worker knows it is one from the variables torchrun sets (`RANK`, `WORLD_SIZE`,
`LOCAL_RANK`); `session` then joins the process group (gloo on CPU, NCCL on CUDA) with
a timeout, so a lost peer ends the run instead of hanging it. `DataParallel` runs
the ordinary training loop on this rank's shard with the module wrapped in
`DistributedDataParallel`, for a chain (`DistributedTrainer`, the `Trainer`'s loop)
and a graph (`graph_distributed.DistributedGraphTrainer`, the `GraphTrainer`'s) alike:
`training.batch_size` is the global batch, each rank steps on `batch_size / world`
rows, and DDP's gradient average over equal local batches is the single-process
gradient of the global batch. The shard follows DistributedSampler: one order per
epoch from (seed, epoch), the same on every rank and the same as a single process's
(bucketed by length, with `training.bucket_by_length`, before it is split), padded by
repeating its head to a multiple of the world size, rank r taking every world-th
sample from r, so step k of all ranks together is step k of one process. Losses (a
graph's every output's; masked ones as means over the global batch's real steps,
`world_losses`) and metrics are reduced over all ranks, and rank 0's logs are
broadcast so every rank takes the same early-stopping decisions. What is set from the
data before training (a graph's normalization statistics) rank 0 computes and sends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import io
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

from rnnc import ir
from rnnc.errors import UsageError

from .batching import epoch_order, epoch_seed
from .device import resolve_device
from .epoch_metrics import Chunk, EpochMetrics
from .world_losses import MaskedSums, WorldMean, global_means
from .trainer import Trainer

TIMEOUT_ENV = "RNNC_DIST_TIMEOUT"  # seconds a collective may wait for a peer (default 300)


@dataclasses.dataclass(frozen=True)
class World:
    """This process's place among the workers of one run."""

    rank: int
    size: int
    local_rank: int
    device: torch.device  # where collectives run: the rank's GPU for NCCL, else the CPU

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def worker_env() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) when torchrun started this process, else None."""
    if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
        return None
    return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", "0"))


def _worker_device(name: str, local_rank: int) -> torch.device:
    device = resolve_device(name)
    if device.type != "cuda":
        return device
    count = torch.cuda.device_count()
    if device.index is None and local_rank >= count:
        raise UsageError(f"worker {local_rank}: only {count} CUDA device(s) on this machine; run at most {count} processes per machine on cuda")
    return torch.device("cuda", local_rank if device.index is None else device.index)


@contextlib.contextmanager
def session(device: str = "auto") -> Iterator[tuple[World | None, torch.device]]:
    """The world and this process's device: (None, device) outside torchrun. Joins the
    process group on entry (unless already joined) and leaves it on exit."""
    env = worker_env()
    if env is None:
        yield None, resolve_device(device)
        return
    rank, size, local_rank = env
    target = _worker_device(device, local_rank)
    joined = not dist.is_initialized()
    if joined:
        if target.type == "cuda":
            torch.cuda.set_device(target)
        timeout = timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, "300")))
        backend = "nccl" if target.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=timeout, **({"device_id": target} if target.type == "cuda" else {}))
    world = World(rank, size, local_rank, target if target.type == "cuda" else torch.device("cpu"))
    try:
        yield world, target
        if joined:
            # every rank leaves together: gloo aborts a process whose peer tears the
            # group down while its own threads still talk ("terminate called ...")
            dist.barrier()
    finally:
        if joined and dist.is_initialized():
            gc.collect()  # DDP's reducer and pending work go while their group still exists
            dist.destroy_process_group()


# --- sharding and reductions ------------------------------------------------------------


def shard_order(n: int, world: World, seed: int, epoch: int, shuffle: bool = True,
                lengths: Tensor | None = None, bucket: int | None = None) -> Tensor:
    """This rank's samples for `epoch`, in order (DistributedSampler's rule on the
    single process's `epoch_order`, bucketed when given `lengths` and the global batch
    `bucket`): every rank gets ceil(n / world) samples; when `n` does not divide, the
    first few of the order are seen twice in the epoch."""
    order = epoch_order(n, seed, epoch, lengths, bucket) if shuffle else torch.arange(n)
    total = -(-n // world.size) * world.size
    if total > n:
        order = order.repeat(-(-total // n))[:total]
    return order[world.rank :: world.size]


def all_sum(values: Sequence[float], world: World) -> list[float]:
    """Each value summed over all ranks (float64)."""
    buffer = torch.tensor(list(values), dtype=torch.float64, device=world.device)
    dist.all_reduce(buffer)
    return buffer.tolist()


def gather_rows(tensor: Tensor, world: World) -> Tensor:
    """The ranks' tensors concatenated along dim 0, in rank order. Their sizes may
    differ, and so may a time axis (batches read from disk are cut to each rank's own
    longest sequence): a shorter one is padded with zeros, steps a mask leaves uncounted."""
    dtype = tensor.dtype
    wire = tensor.to(device=world.device, dtype=torch.uint8 if dtype == torch.bool else dtype).contiguous()
    shapes = torch.zeros((world.size, wire.dim()), dtype=torch.int64, device=world.device)
    shapes[world.rank] = torch.tensor(wire.shape, dtype=torch.int64)
    dist.all_reduce(shapes)
    most = shapes.amax(0).tolist()
    padded = torch.zeros(most, dtype=wire.dtype, device=world.device)
    padded[tuple(slice(0, size) for size in wire.shape)] = wire
    parts = [torch.empty_like(padded) for _ in range(world.size)]
    dist.all_gather(parts, padded)
    rows = torch.cat([part[: int(count)] for part, count in zip(parts, shapes[:, 0].tolist())])
    return rows.to(device=tensor.device, dtype=dtype)


def agree(logs: dict[str, float], world: World) -> dict[str, float]:
    """Rank 0's values for `logs` (same keys on every rank), so that every rank takes
    the same early-stopping and schedule decisions even if its floats differ."""
    keys = list(logs)
    buffer = torch.tensor([float(logs[k]) for k in keys], dtype=torch.float64, device=world.device)
    dist.broadcast(buffer, 0)
    return dict(zip(keys, buffer.tolist()))


def broadcast_bytes(payload: bytes | None, world: World) -> bytes:
    """Rank 0's `payload` on every rank (others pass None)."""
    size = torch.tensor([len(payload or b"")], dtype=torch.int64, device=world.device)
    dist.broadcast(size, 0)
    data = torch.zeros(int(size), dtype=torch.uint8, device=world.device)
    if world.is_main and payload:
        data.copy_(torch.frombuffer(bytearray(payload), dtype=torch.uint8))
    dist.broadcast(data, 0)
    return data.cpu().numpy().tobytes()


# --- the trainer ---------------------------------------------------------------------


class DataParallel:
    """What makes a trainer (`Trainer` or `GraphTrainer`, after this in the bases) one
    rank's: its shard, DDP gradients, reduced logs. Every method that reduces is
    collective: all ranks call it, in the same order. A subclass gathers the outputs
    its metrics need through `_gathered`."""

    def __init__(self, model: ir.Model, device: torch.device | str, world: World):
        batch = model.training.batch_size
        if batch % world.size:
            fit = batch - batch % world.size or world.size
            raise UsageError(
                f"training.batch_size {batch} is the global batch and must divide among the {world.size} workers "
                f"(e.g. --set training.batch_size={fit})"
            )
        super().__init__(model, device)  # type: ignore[call-arg]
        self.world = world
        self.local_batch = batch // world.size
        self.shards = 1  # DDP's gradient hooks run in backward(); the processes are the split
        self._gather = True
        ids = [self.device.index] if self.device.type == "cuda" else None
        self.ddp = DistributedDataParallel(self.module, device_ids=ids)  # broadcasts rank 0's weights
        if world.rank:  # rank 0 keeps the single-process dropout stream; the others differ
            torch.manual_seed(self._rank_seed(0))

    def _rank_seed(self, epoch: int) -> int:
        return epoch_seed(self.settings.seed, (1 << 40) + (epoch << 16) + self.world.rank)

    def _loss_keys(self) -> list[str]:
        """The logs that are means over samples: the loss, and a graph's each output's."""
        outputs = self.model.outputs
        return ["loss"] + ([f"{out.name}_loss" for out in outputs] if len(outputs) > 1 else [])

    def _reduced(self, logs: dict[str, float], count: int, agreed: bool = True) -> dict[str, float]:
        """`logs` of `count` samples on this rank as the logs of all ranks' samples:
        the losses weighted by the ranks' counts, then (`agreed`) rank 0's values everywhere."""
        keys = self._loss_keys()
        *totals, samples = all_sum([logs[k] * count for k in keys] + [count], self.world)
        logs.update({k: total / samples for k, total in zip(keys, totals)})
        return agree(logs, self.world) if agreed else logs

    def _every_rank(self, chunk: Chunk) -> Chunk:
        """A chunk of outputs, targets and mask to count metrics on, with every rank's rows."""
        outputs, targets, mask = chunk
        return self._gathered(outputs.float()), self._gathered(targets), None if mask is None else self._gathered(mask)

    def _gathered(self, tensor: Tensor) -> Tensor:
        """`tensor`'s rows of every rank (this rank's alone when every rank has all)."""
        return gather_rows(tensor, self.world) if self._gather else tensor

    def adapt(self, train: Any) -> None:
        """Rank 0 sets what comes from the data (normalization statistics), once, and
        sends it: the parameters without gradients, which DDP does not keep in step."""
        if self.world.is_main:
            super().adapt(train)  # type: ignore[misc]
        with torch.no_grad():
            for param in self.module.parameters():
                if not param.requires_grad:
                    dist.broadcast(param.data, 0)

    def train_epoch(self, epoch: int, data: Any, lr: float, progress: bool = False) -> dict[str, float]:
        full = self.settings
        bucket = full.batch_size if full.bucket_by_length and full.shuffle and self.model.graph is None else None
        order = shard_order(data.size, self.world, full.seed, epoch, full.shuffle, data.lengths if bucket else None, bucket)
        local = data.take(order.to(self.device))
        # The one hot loop, run on the shard: local batch, already in the epoch's order, DDP
        # module, masked means over the global batch's real steps.
        with self._on_shard(lambda objective: WorldMean(objective, self.world.size, self.world.device), self.ddp):
            logs = super().train_epoch(epoch, local, lr, progress and self.world.is_main)  # type: ignore[misc]
        return self._reduced(logs, local.size)

    @contextlib.contextmanager
    def _on_shard(self, wrap: Callable[[Any], Any], module: Any = None) -> Iterator[dict[str, Any]]:
        """The inherited loop's settings for a shard (the local batch, no shuffling of
        its own), `module` in place of the module, each output's objective wrapped by
        `wrap`; yields the wrapped objectives by output name."""
        graph = getattr(self, "objectives", None)  # a graph's, by output; a chain's one
        kept = (self.settings, self.module, self.objective, graph)
        wrapped = {name: wrap(each) for name, each in (graph or {self.model.outputs[0].name: self.objective}).items()}
        self.settings = dataclasses.replace(self.settings, batch_size=self.local_batch, shuffle=False)
        self.module = self.module if module is None else module
        if graph is not None:
            self.objectives = wrapped
        else:
            self.objective = next(iter(wrapped.values()))
        try:
            yield wrapped
        finally:
            self.settings, self.module, self.objective, graph = kept
            if graph is not None:
                self.objectives = graph

    def _real_steps(self, objective: Any, mask: Tensor) -> Tensor:
        """The real steps of every rank's rows (`WorldMean` counted them)."""
        return objective.count[0].to(mask.device)

    def agree_longest(self, longest: Tensor) -> Tensor:
        """The longest sequence of each batch over all ranks: with training.tbptt every
        rank then runs the same chunks, so DDP's gradient reductions pair up."""
        longest = longest.to(self.world.device)
        dist.all_reduce(longest, op=dist.ReduceOp.MAX)
        return longest

    def evaluate(self, data: Any) -> dict[str, float]:
        if data.size < self.world.size:  # too few to shard: every rank evaluates all
            self._gather = False
            try:
                return agree(super().evaluate(data), self.world)  # type: ignore[misc]
            finally:
                self._gather = True
        # Rank r's batch k: the rows of one process's batch k at r, r + world, ...
        local = data.take(torch.arange(self.world.rank, data.size, self.world.size, device=self.device))
        with self._on_shard(MaskedSums) as objectives:
            logs = super().evaluate(local)  # type: ignore[misc]
        masked = {name: each.sums for name, each in objectives.items() if each.sums}
        logs = self._reduced(logs, local.size, agreed=False)
        if masked:  # the same outputs on every rank: the data decides which have masks
            means = global_means(list(masked.values()), data.size, self.settings.batch_size, self.world.device)
            logs.update(self._with_means(logs, dict(zip(masked, means))))
        return agree(logs, self.world)

    def _with_means(self, logs: dict[str, float], means: dict[str, float]) -> dict[str, float]:
        """The loss logs with these outputs' means in place: each `<output>_loss` and
        `loss`, the weighted sum over the outputs."""
        outputs = self.model.outputs
        if len(outputs) == 1:
            return {"loss": outputs[0].loss_weight * means[outputs[0].name]}
        each = {out.name: means.get(out.name, logs[f"{out.name}_loss"]) for out in outputs}
        return {"loss": sum(out.loss_weight * each[out.name] for out in outputs), **{f"{k}_loss": v for k, v in each.items()}}

    # --- state: every rank's RNG, so a resumed run continues exactly ----------------

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()  # type: ignore[misc]
        state["rng"]["ranks"] = [row.clone() for row in gather_rows(torch.get_rng_state()[None], self.world)]
        if self.device.type == "cuda":
            state["rng"]["cuda_ranks"] = [row.clone() for row in gather_rows(torch.cuda.get_rng_state(self.device)[None], self.world)]
        state["world_size"] = self.world.size
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)  # type: ignore[misc]
        rng, rank = state["rng"], self.world.rank
        if state.get("world_size") == self.world.size and "ranks" in rng:
            torch.set_rng_state(rng["ranks"][rank].contiguous().clone())  # its own storage, as set_rng_state needs
            if self.device.type == "cuda" and "cuda_ranks" in rng:
                torch.cuda.set_rng_state(rng["cuda_ranks"][rank], self.device)
        elif rank:  # resumed with another number of workers: a fresh stream per rank
            torch.manual_seed(self._rank_seed(self.epoch))

    def adopt(self, state: dict[str, Any] | None) -> bool:
        """Load rank 0's `state` (a checkpoint only rank 0 read) on every rank, through
        the same safe loader as a checkpoint file; False when rank 0 had none."""
        payload = None
        if self.world.is_main and state is not None:
            buffer = io.BytesIO()
            torch.save(state, buffer)
            payload = buffer.getvalue()
        data = broadcast_bytes(payload, self.world)
        if not data:
            return False
        self.load_state_dict(torch.load(io.BytesIO(data), map_location="cpu", weights_only=True))
        return True


class DistributedTrainer(DataParallel, Trainer):
    """A chain's `Trainer` on one rank; its metrics from every rank's outputs."""

    def _epoch_metrics(self) -> EpochMetrics:
        return EpochMetrics(self.model.metrics, self.model.loss, self.objective.probabilities, self._every_rank)


# --- the launcher: torchrun's --------------------------------------------------------


def launch(nproc: int, worker_args: Sequence[str]) -> int:
    """Run `python -m rnnc <worker_args>` in `nproc` workers on this machine through
    torchrun (standalone rendezvous on a free local port, no restarts). Returns the exit
    status: 0, or the first failed worker's (2 for bad input, else 1)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    config = get_args_parser().parse_args(
        ["--standalone", f"--nproc-per-node={nproc}", "--max-restarts=0", "--monitor-interval=0.2", "-m", "rnnc"]
    )
    # Set, not parsed: torchrun's parser takes a worker's `--log` for an abbreviation of its own `--log-dir`.
    config.training_script_args = list(worker_args)
    try:
        run(config)
    except ChildFailedError as err:
        rank, failure = err.get_first_failure()
        code = failure.exitcode
        print(f"rnnc train: worker {rank} of {nproc} failed (exit status {code}); the other workers were stopped", file=sys.stderr)
        return 2 if code == 2 else 1
    return 0

