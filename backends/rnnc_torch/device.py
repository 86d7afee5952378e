"""Which torch device a `--device` name (`auto`, `cpu`, `cuda`, `cuda:N`) means.

Its own module because both sides need it: `fit` and the CLI's training choose the
device of one process, `distributed` the device of each torchrun worker, and `fit`
imports `distributed`, so the choice cannot live in either without an import cycle.
"""

from __future__ import annotations

import torch

from rnnc.errors import UsageError


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` (CUDA when available, else CPU), `cpu`, `cuda` or `cuda:N`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: CUDA is not available here (torch {torch.__version__}); use --device cpu or auto")
        return torch.device(name)
    raise UsageError(f"--device {name}: expected auto, cpu or cuda")
