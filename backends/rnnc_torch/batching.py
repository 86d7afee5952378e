"""How an epoch's rows become batches: each cut to its longest sequence, optionally bucketed by length.

A model without conv1d never reads a step past a sequence's length (`lengths` masks
it) and counts no padded step of a per-step output, so a batch needs only as many
steps as its longest sequence: `batch_longest` gives each batch's, once per epoch (one
read of the lengths, not one per step), and the trainer cuts the batch's time axis
there (a tagger's targets and mask with it; a graph's each sequence input at its own
longest, with the per-step targets that follow it), as
`rnnc.rows_dataset.RowsDataset.batch` cuts the rows it reads from disk
(`cuts_to_longest` says where both do). The steps trained are the same; the sums over
fewer padded zeros may round differently in the last bits.

`training.bucket_by_length` goes further: `bucketed` sorts chunks of `BUCKET_BATCHES`
batches of the epoch's shuffled order by length (stable), cuts them into batches and
draws the whole batches in an order shuffled by the epoch's generator, the one short
batch last, so each batch holds sequences of similar lengths. The same seed gives the
same batches; every row is in exactly one of them each epoch. `epoch_order` is that
order, shuffled and perhaps bucketed, for one process and data-parallel workers alike
(each worker shards the same global order: `distributed.shard_order`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from rnnc.rows_dataset import cuts_to_longest

__all__ = ["BUCKET_BATCHES", "batch_longest", "bucketed", "cuts_to_longest", "epoch_order", "epoch_seed"]

BUCKET_BATCHES = 50  # batches per length-sorted chunk: wide enough to pad little, narrow enough to stay shuffled


def epoch_seed(seed: int, epoch: int) -> int:
    """A well-mixed shuffling seed for (seed, epoch)."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def epoch_order(n: int, seed: int, epoch: int, lengths: Tensor | None = None, bucket: int | None = None) -> Tensor:
    """The epoch's order of `n` rows (on the CPU): the permutation drawn from (seed,
    epoch), then, given `lengths` and a global batch `bucket`, `bucketed` by the same
    generator."""
    generator = torch.Generator().manual_seed(epoch_seed(seed, epoch))
    order = torch.randperm(n, generator=generator)
    if bucket is not None and lengths is not None:
        order = bucketed(order, lengths, bucket, generator)
    return order


def batch_longest(lengths: Tensor | None, batch: int, agree: Callable[[Tensor], Tensor] | None = None) -> list[int] | None:
    """The longest of each `batch` rows of `lengths` (the epoch's order), or None
    without lengths (every step real: nothing to cut). `agree` makes them every
    data-parallel rank's (the longest of each batch over all ranks), so that outputs
    gathered from the ranks have one width."""
    if lengths is None or lengths.numel() == 0:
        return None
    flat = lengths.detach().to("cpu", torch.int64)
    short = (-flat.numel()) % batch
    padded = torch.cat([flat, flat.new_zeros(short)]) if short else flat
    longest = padded.view(-1, batch).amax(1)
    if agree is not None:
        longest = agree(longest).cpu()
    return longest.clamp_min(1).tolist()


def bucketed(order: Tensor, lengths: Tensor, batch: int, generator: torch.Generator) -> Tensor:
    """`order` (a permutation of the rows; `lengths` by row) regrouped so that each
    batch takes rows of similar lengths: chunks of `BUCKET_BATCHES` batches sorted by
    length, the whole batches then drawn in an order from `generator`."""
    device = order.device
    order = order.cpu()
    keys = lengths.detach().cpu()[order]
    span = batch * BUCKET_BATCHES
    parts = []
    for start in range(0, order.numel(), span):
        piece = keys[start : start + span]
        parts.append(order[start : start + span][torch.sort(piece, stable=True).indices])
    grouped = torch.cat(parts)
    whole = grouped.numel() // batch
    drawn = torch.randperm(whole, generator=generator)
    batches = grouped[: whole * batch].view(whole, batch)[drawn].reshape(-1)
    return torch.cat([batches, grouped[whole * batch :]]).to(device)
