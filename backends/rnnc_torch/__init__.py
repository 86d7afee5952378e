"""rnnc's PyTorch backend: the spec's model as an `nn.Module`, for training and inference.

`build_module(model)` lowers an IR model to a `SpecModule`; `backend` is the plugin
object that the `rnnc.backends` entry point `rnnc_torch:backend` loads, with the
methods of every capability in `rnnc.plugins`: `train` leaves a run directory
(train.py; the CLI then has the ONNX backend write `model.onnx`, which this package
never imports), `launch` starts torchrun workers, and `export` writes a `torch.export`
program (`.pt2`, export.py) for `rnnc compile --backend torch`.
See docs/torch-backend.md for the semantics (last real step, dropout, fusion,
activations, initialisation) and docs/deploy.md for the `.pt2`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rnnc import ir
from rnnc.errors import Problem, UsageError

from .model import SpecModule, build_module

if TYPE_CHECKING:
    from .fit import History

__all__ = ["SpecModule", "TorchBackend", "backend", "build_module"]


class TorchBackend:
    """The `torch` backend: compiles an IR model to a `SpecModule`."""

    name = "torch"
    capabilities = frozenset({"train", "infer", "export"})

    def compile(self, model: ir.Model, weights: Mapping[str, np.ndarray] | None = None, **options: Any) -> SpecModule:
        """A `SpecModule` in eval mode, with `weights` loaded when given (else initial
        weights by the spec's `initializer`). Option: `fuse` (default True) fuses compatible recurrent layers."""
        fuse = options.pop("fuse", True)
        if options:
            raise UsageError(f"torch backend: unknown option(s) {', '.join(sorted(options))}; it takes: fuse")
        module = build_module(model, fuse=bool(fuse))
        if weights is not None:
            module.load_ir_state(weights)
        return module.eval()

    def check(self, model: ir.Model) -> list[Problem]:
        """The export settings a `.pt2` cannot honour (`streaming`, `quantize`), as problems."""
        from .export import export_problems

        return export_problems(model)

    def export(
        self, model: ir.Model, weights: Mapping[str, np.ndarray] | None, path: str | os.PathLike[str], **options: Any
    ) -> None:
        """Write `model` as a `torch.export` program to `path` atomically (what `rnnc
        compile --backend torch` calls); without `weights`, initial weights seeded by
        `training.seed`. Options: `classes` and `vocab`, recorded in its `rnnc.json`.
        See `rnnc_torch.export`, imported here so that training never imports it."""
        from .export import OPTIONS, export

        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise UsageError(f"torch backend: unknown option(s) {', '.join(unknown)}; export takes: {', '.join(OPTIONS)}")
        export(model, weights, path, **options)

    def train(
        self, model: ir.Model, run_dir: Path, *, spec: Mapping[str, Any] | None, resume: bool,
        device: str, progress: bool, threads: int | None = None, on_epoch: Callable[[dict[str, Any]], None] | None = None,
        weights: Mapping[str, np.ndarray] | None = None,
    ) -> History:
        """Train `model` into the run directory `run_dir` (`rnnc train`), which then holds
        what `rnnc.run_dir` names; see `rnnc_torch.train.train_run`. Imported here, so
        that compiling a model never imports the training code. `weights` (IR names):
        the initial weights of a fresh run (`rnnc train --weights`)."""
        from .train import train_run

        return train_run(model, run_dir, spec=spec, resume=resume, device=device, progress=progress, threads=threads,
                         on_epoch=on_epoch, weights=weights)

    def writes_run_dir(self) -> bool:
        """False in a torchrun worker other than rank 0, which trains but leaves the run
        directory to rank 0."""
        from .distributed import worker_env

        env = worker_env()
        return env is None or env[0] == 0

    def launch(self, nproc: int, worker_args: Sequence[str]) -> int:
        """Run `rnnc <worker_args>` in `nproc` data-parallel workers through torchrun
        (`rnnc train --nproc`); see `rnnc_torch.distributed.launch`."""
        from .distributed import launch

        return launch(nproc, worker_args)


backend = TorchBackend()
