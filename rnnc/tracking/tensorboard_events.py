"""TensorBoard event files of a run, as Keras's TensorBoard callback lays them out.

RUN_DIR/tensorboard/train holds the training logs per epoch (`loss`, each metric, `lr`,
`time`) and the spec as text, RUN_DIR/tensorboard/validation the `val_` ones under the
same names (so TensorBoard draws the two curves on one chart), RUN_DIR/tensorboard/test
the test result at the last epoch. `tensorboard --logdir runs/` shows every run. Written
with tensorboard's own event file writer and summary protos, which need no TensorFlow.
Values are float32, metrics.jsonl's rounded to the nearest: TensorBoard's data server
shows no float64 scalar. The writer is flushed after each epoch, so a TensorBoard
watching the run sees it live.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorboard.plugins.text import metadata as text_metadata
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.util import tensor_util

from .records import numbers

FOLDER = "tensorboard"
TRAIN, VALIDATION, TEST = "train", "validation", "test"


def _split(logs: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """An epoch's numbers per TensorBoard run: `val_loss` is validation's `loss`."""
    runs: dict[str, dict[str, float]] = {TRAIN: {}, VALIDATION: {}}
    for key, value in numbers(logs).items():
        if key.startswith("val_"):
            runs[VALIDATION][key.removeprefix("val_")] = value
        else:
            runs[TRAIN][key] = value
    return runs


def logged_epochs(folder: Path) -> list[int]:
    """The epochs whose `loss` the train events in `folder` hold, in the order written."""
    if not (folder / TRAIN).is_dir():
        return []
    events = EventAccumulator(str(folder / TRAIN), size_guidance={"tensors": 0})
    events.Reload()
    return [e.step for e in events.Tensors("loss")] if "loss" in events.Tags()["tensors"] else []


class TensorBoardTracker:
    name = "tensorboard"

    def __init__(self, run_dir: Path, spec: Mapping[str, Any]):
        self.folder = run_dir / FOLDER
        self.spec = spec
        self._writers: dict[str, EventFileWriter] = {}
        self._last = 0

    def start(self, history: Sequence[dict[str, Any]]) -> None:
        """Append the epochs of `history` the event files lack; when they hold anything
        else (another run's epochs in this directory), write them anew."""
        done = logged_epochs(self.folder)
        before = [logs["epoch"] for logs in history[: len(done)]]
        if not done or done != before:
            shutil.rmtree(self.folder, ignore_errors=True)
            done = []
            self._text(TRAIN, "spec", "```yaml\n" + yaml.safe_dump(dict(self.spec), sort_keys=False) + "```")
        for logs in history[len(done) :]:
            self.epoch(logs)

    def epoch(self, logs: dict[str, Any]) -> None:
        step = int(logs["epoch"])
        for run, values in _split(logs).items():
            for tag, value in values.items():
                self._scalar(run, tag, value, step)
        self._last = step
        self._flush()

    def finish(self, status: str, test: Mapping[str, Any] | None) -> None:
        for tag, value in numbers(test or {}).items():
            self._scalar(TEST, tag, value, self._last)
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()

    def _writer(self, run: str) -> EventFileWriter:
        if run not in self._writers:
            self._writers[run] = EventFileWriter(str(self.folder / run))
        return self._writers[run]

    def _scalar(self, run: str, tag: str, value: float, step: int) -> None:
        event = event_pb2.Event(wall_time=time.time(), step=step)
        metadata = scalar_metadata.create_summary_metadata(display_name=tag, description="")
        metadata.data_class = summary_pb2.DataClass.DATA_CLASS_SCALAR  # as tensorboard.summary.Writer marks it
        event.summary.value.add(tag=tag, tensor=tensor_util.make_tensor_proto(np.float32(value)), metadata=metadata)
        self._writer(run).add_event(event)

    def _text(self, run: str, tag: str, text: str) -> None:
        event = event_pb2.Event(wall_time=time.time(), step=0)
        metadata = text_metadata.create_summary_metadata(display_name=tag, description="")
        metadata.data_class = summary_pb2.DataClass.DATA_CLASS_TENSOR
        event.summary.value.add(tag=tag, tensor=tensor_util.make_tensor_proto(np.array(text.encode())), metadata=metadata)
        self._writer(run).add_event(event)

    def _flush(self) -> None:
        for writer in self._writers.values():
            writer.flush()
