"""The resumable checkpoint of a training run, written and read without unsafe pickle.

A checkpoint is `Trainer.state_dict()` plus a format number and the fingerprint of the
spec it belongs to, saved with `torch.save` (to memory, then written atomically) and
read with `torch.load(weights_only=True)`, which restores tensors, numbers, strings,
lists and dicts and refuses anything that would run code. Tensors come back on the
CPU; the trainer moves them where they belong.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from rnnc.artifacts import atomic_write_bytes
from rnnc.errors import ArtifactError

FORMAT = 1


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any], fingerprint: str) -> None:
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "fingerprint": fingerprint, **state}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | os.PathLike[str], fingerprint: str | None = None) -> dict[str, Any]:
    """The state saved at `path`; with `fingerprint`, refuse one made from another spec."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ArtifactError(f"{path}: cannot read checkpoint ({err.strerror or err})") from None
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a bad file; all mean the same here
        raise ArtifactError(f"{path}: not a usable rnnc checkpoint ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ArtifactError(f"{path}: not an rnnc checkpoint of format {FORMAT}")
    if fingerprint is not None and state.get("fingerprint") != fingerprint:
        raise ArtifactError(
            f"{path}: the checkpoint was made from a different spec (only training.epochs may change "
            f"on --resume); start a new run with another -o, or drop --resume to start over"
        )
    return state
