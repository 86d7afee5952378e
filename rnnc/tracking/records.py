"""What the trackers record, from a run's logs and spec: numbers per epoch, dotted settings."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rnnc.run_dir import METRICS


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """A nested spec as dotted keys (`layers.0.units`), as MLflow's parameters take it."""
    if isinstance(data, Mapping) and data:
        items: Iterable[tuple[Any, Any]] = data.items()
    elif isinstance(data, (list, tuple)) and data:
        items = enumerate(data)
    else:
        return {prefix: data} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in items:
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def saved_history(run_dir: Path) -> list[dict[str, Any]]:
    """The epochs `run_dir/metrics.jsonl` holds (none when there is no such file)."""
    path = run_dir / METRICS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def numbers(logs: Mapping[str, Any]) -> dict[str, float]:
    """The values of an epoch's logs that a tracker records: numbers, not `epoch`."""
    return {k: float(v) for k, v in logs.items() if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool)}
