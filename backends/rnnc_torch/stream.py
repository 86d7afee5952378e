"""Training data left on disk (`rnnc.rows_dataset.RowsDataset`), gathered batch by batch.

`StreamData` stands where `DeviceData` stands for data in memory: the trainer permutes
it by the same per-epoch order (`take` only composes the order, nothing is copied),
and `batches` gathers each batch's rows from the source on a prefetch thread, a few
batches ahead of the step that trains on them, as `DeviceData` of the batch alone.
Each batch holds exactly the arrays that slicing the permuted in-memory data would
(`RowsDataset.batch` pads to the source's full time axis, or cuts at the batch's
longest sequence where the trainer cuts it in memory), so the same seed gives the
same weights from disk as from memory. A data-parallel rank's shard is a `take` of
the same kind: each rank reads only its own rows. A graph's batches (`GraphDataset`,
put on the device by `GraphDeviceData.of`) come the same way; `named_lengths` and
`width` tell its trainer what `training.tbptt` needs of the whole epoch.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rnnc import ir
from rnnc.dataset import Dataset
from rnnc.graph_data import GraphDataset
from rnnc.rows_dataset import RowsDataset

PREFETCH = 2  # batches gathered ahead of the step


@dataclass(frozen=True)
class StreamData:
    """`source`'s rows in `order`, each batch put on `device` by `tensors` (the
    trainer's `DeviceData.of`, so a batch is what a slice of data in memory is)."""

    model: ir.Model
    source: RowsDataset
    order: np.ndarray
    device: torch.device
    tensors: Callable[[Dataset | GraphDataset], Any]

    @classmethod
    def of(cls, model: ir.Model, source: RowsDataset, device: torch.device,
           tensors: Callable[[Dataset | GraphDataset], Any]) -> StreamData:
        return cls(model, source, np.arange(len(source), dtype=np.int64), device, tensors)

    @property
    def size(self) -> int:
        return int(self.order.shape[0])

    @property
    def steps(self) -> int:
        return self.source.steps

    @property
    def masked(self) -> bool:
        """Whether its batches carry a mask (a sequence-labelling model with lengths)."""
        return self.source.lengths is not None and self.model.sequence_output

    @property
    def lengths(self) -> Tensor | None:
        """Every row's lengths in this order (small: one number per row), or None."""
        lengths = self.source.row_lengths()
        assert not isinstance(lengths, dict)
        return None if lengths is None else torch.from_numpy(lengths[self.order]).to(self.device)

    @property
    def named_lengths(self) -> dict[str, Tensor]:
        """A graph's lengths by input, every row's in this order (one number per row each)."""
        lengths = self.source.row_lengths()
        assert isinstance(lengths, dict)
        return {name: torch.from_numpy(value[self.order]).to(self.device) for name, value in lengths.items()}

    def width(self, name: str) -> int:
        """The source's full time axis of array `name` (a graph's sequence input)."""
        return int(self.source.rows.columns[name].shape[1])

    def take(self, order: Tensor) -> StreamData:
        """The rows at `order` of this order: nothing is read until a batch is."""
        return StreamData(self.model, self.source, self.order[order.cpu().numpy()], self.device, self.tensors)

    def gather(self, start: int, stop: int) -> Any:
        """Rows `start:stop` of this order, as the trainer's tensors."""
        return self.tensors(self.source.batch(self.order[start:stop]))

    def batches(self, size: int) -> Iterator[Any]:
        """Every batch of `size` rows in order, each gathered on a thread while the ones
        before it train; an error reading one is raised here, at that batch."""
        ready: queue.Queue = queue.Queue(PREFETCH)
        stop = threading.Event()

        def gather() -> None:
            try:
                for start in range(0, self.size, size):
                    item = self.gather(start, min(self.size, start + size))
                    while not stop.is_set():
                        try:
                            ready.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
            except BaseException as err:  # noqa: BLE001 - handed to the training thread
                ready.put(err)

        worker = threading.Thread(target=gather, name="rnnc-prefetch", daemon=True)
        worker.start()
        try:
            for _ in range(0, self.size, size):
                item = ready.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            worker.join()
