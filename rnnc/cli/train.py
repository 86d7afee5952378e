"""`rnnc train SPEC [-o RUN_DIR] [--set KEY=VALUE ...] [--resume] [--device auto|cpu|cuda] [--nproc N]`.

Loads the spec (with overrides), then chains two backends through the protocols of
`rnnc.plugins`, neither knowing the other: the one that can train (`torch`) checks the
data, trains with a progress bar and one line per epoch, and leaves a run directory;
the ONNX backend, asked first whether it can export the model (`check`, before any
training), then writes `model.onnx` from the saved weights (`rnnc.run_dir`). Exit
status: 0 trained, 1 training failed while running (the loss diverged, model.onnx
could not be written), 2 bad input (spec, data, command line, export settings the ONNX
backend refuses), 130 interrupted (Ctrl-C: the last completed epoch is kept, as
`model.onnx` too, and one line gives the exact command that continues the run).
Without a loadable ONNX backend the run still trains, and says at its start how to
export the weights later. The core imports no torch: the backends are found through
the `rnnc.backends` entry points. `--nproc N` checks the spec here, then has the
backend start N workers on this machine, each running this same command
(docs/distributed.md); only the worker that writes the run directory exports.
`--log tensorboard|mlflow` (and the spec's `training.log`) records the run through
`rnnc.tracking`, fed by the backend's `on_epoch` in the worker that writes the run
directory; the run's end (finished, failed, interrupted) closes the record.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from typing import TYPE_CHECKING

from rnnc.cli.check import add_overrides_argument
from rnnc.cli.progress import add_progress_argument, shows_progress
from rnnc.errors import DiskFullError, Problem, RnncError, SpecError, TrainingError, UsageError
from rnnc.run_dir import MODEL, WEIGHTS, export_command, export_inputs, saved_epoch
from rnnc.tracking import parse_names

if TYPE_CHECKING:
    from rnnc import ir
    from rnnc.plugins import ExportingBackend, TrainingBackend

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it
TRAINER, EXPORTER = "torch", "onnx"  # the backends that train and that write a run's model.onnx


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a spec; writes a run directory (weights, checkpoint, metrics)")
    parser.add_argument("spec", metavar="SPEC", help="spec file (YAML)")
    parser.add_argument("-o", "--output", dest="run_dir", metavar="RUN_DIR", help="run directory (default: runs/<name>)")
    add_overrides_argument(parser)
    parser.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from its last completed epoch")
    parser.add_argument("--weights", metavar="W",
                        help="initial weights (a weights.safetensors: rnnc import's, another run's) instead of fresh ones")
    parser.add_argument("--device", default="auto", metavar="DEVICE", help="auto (default: cuda when available), cpu or cuda")
    add_progress_argument(parser, "no progress bar; the per-epoch lines stay")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="torch's intra-op threads (default: torch's own, the cores); pin it to repeat a run bit for bit on another machine")
    parser.add_argument("--nproc", type=int, default=1, metavar="N",
                        help="data-parallel worker processes on this machine, started by torchrun (default 1; see docs/distributed.md)")
    parser.add_argument("--log", action="append", default=[], metavar="TRACKER",
                        help="record the run: tensorboard (event files in RUN_DIR/tensorboard) or mlflow; "
                             "repeat or comma-separate for both (adds to training.log; docs/tracking.md)")
    parser.add_argument("--backend", default=TRAINER, help=argparse.SUPPRESS)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rnnc.plugins import get_backend
    from rnnc.spec import load_model, resolved_spec
    from rnnc.tracking import Tracking, require

    logged = parse_names(args.log)
    model = load_model(args.spec, args.overrides)
    spec = resolved_spec(args.spec, args.overrides)
    # Data paths as the run saw them, so the saved spec trains again from anywhere.
    if isinstance(spec.get("data"), dict):
        for role in ("train", "validation", "test"):
            if getattr(model.data, role):
                spec["data"][role] = getattr(model.data, role)
    trainer = get_backend(args.backend, "train")
    initial = _initial_weights(args, model)
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / model.name
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads {args.threads}: expected a number of threads >= 1")
    trackers = tuple(dict.fromkeys(model.training.log + logged))
    if args.nproc != 1:
        _exporter(args, model, run_dir, announce=False)  # bad export settings: said once, here
        require(trackers)
        return _launch(args, trainer, run_dir)
    writes = trainer.writes_run_dir()
    exporter = _exporter(args, model, run_dir, announce=writes)
    tracking = Tracking(trackers if writes else (), run_dir, spec)
    if tracking and not _takes_on_epoch(trainer):
        raise UsageError(f"--log {','.join(trackers)}: the '{args.backend}' training backend takes no on_epoch callback, "
                         "so nothing could be recorded; drop --log and training.log, or train with the torch backend")
    listens = {"on_epoch": tracking.on_epoch} if tracking else {}  # a backend without on_epoch still trains
    try:
        try:
            result = trainer.train(model, run_dir, spec=spec, resume=args.resume, device=args.device,
                                   progress=shows_progress(args), threads=args.threads, **listens, **initial)
        except KeyboardInterrupt:
            if writes:
                _export_interrupted(exporter, model, run_dir)
            tracking.finish("KILLED")
            raise
        except BaseException:
            tracking.finish("FAILED")
            raise
        if writes:
            if exporter is not None:
                try:
                    _export(exporter, model, run_dir)
                except TrainingError:
                    tracking.finish("FAILED", getattr(result, "test", None))
                    raise
            tracking.finish("FINISHED", getattr(result, "test", None))
            print(f"run saved in {run_dir}", file=sys.stderr)
    except TrainingError as err:
        print(f"rnnc train: {err}", file=sys.stderr)
        return 1
    except SpecError as err:  # settings the training backend refuses: placed in the spec file
        raise SpecError(placed(args.spec, err.problems, args.overrides)) from None
    except KeyboardInterrupt:
        print(f"rnnc train: interrupted; continue the run with: {resume_command(args, run_dir)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _initial_weights(args: argparse.Namespace, model: ir.Model) -> dict:
    """`{"weights": ...}` for the backend's `train` when `--weights` is given (checked
    against the spec now), else nothing, so a backend without the option still trains."""
    if not args.weights:
        return {}
    if args.resume:
        raise UsageError("--weights starts a fresh run from those weights; --resume continues RUN_DIR: give one of them")
    from rnnc.artifacts import load_weights

    return {"weights": load_weights(args.weights, model)}


def _takes_on_epoch(trainer: TrainingBackend) -> bool:
    """Whether the backend's `train` takes `on_epoch` (added to the protocol after some
    third-party backends were written; those train on, without tracking)."""
    parameters = inspect.signature(trainer.train).parameters.values()
    return any(p.name == "on_epoch" or p.kind is p.VAR_KEYWORD for p in parameters)


def _exporter(args: argparse.Namespace, model: ir.Model, run: Path, announce: bool) -> ExportingBackend | None:
    """The backend that writes `model.onnx`, once it has accepted the model's export
    settings (a `SpecError` now, before any training, rather than a missing model.onnx
    after it). Without it the run still trains; `announce` says so now, with the
    command that exports the weights later."""
    from rnnc.plugins import find, get_backend

    found = find(EXPORTER)
    if found is None or found.backend is None:
        if announce:
            why = found.error if found is not None else f"no backend named '{EXPORTER}' is installed"
            print(
                f"note: the ONNX backend cannot be imported ({why}), so this run writes no {MODEL}; "
                f"once it imports (pip install onnx), export the trained weights with: {export_command(run)}",
                file=sys.stderr,
            )
        return None
    exporter = get_backend(EXPORTER, "export")
    problems = exporter.check(model)
    if problems:
        raise SpecError(placed(args.spec, problems, args.overrides))
    return exporter


def _export(exporter: ExportingBackend, model: ir.Model, run: Path) -> None:
    """Write the run's `model.onnx` from its saved weights (atomically, as every backend
    writes); a failure is a `TrainingError` that says the weights are saved and how to
    export them."""
    try:
        weights, options = export_inputs(run, model)
        exporter.export(model, weights, run / MODEL, **options)
    except (RnncError, DiskFullError) as err:
        reason = "; ".join(err.lines()) if isinstance(err, RnncError) else str(err)
        raise TrainingError(
            f"{run / MODEL} not written: {reason}; the weights are saved in {run / WEIGHTS}, "
            f"export them with: {export_command(run)}"
        ) from None


def _export_interrupted(exporter: ExportingBackend | None, model: ir.Model, run: Path) -> None:
    """After Ctrl-C: `model.onnx` from the weights of the last completed epoch, as saved."""
    if not (run / WEIGHTS).exists():
        print(f"interrupted before the first epoch ended; {run} holds no weights yet", file=sys.stderr)
        return
    epoch = saved_epoch(run)
    if exporter is None:
        print(f"interrupted: {run / WEIGHTS} holds the weights of epoch {epoch}", file=sys.stderr)
        return
    try:
        _export(exporter, model, run)
    except TrainingError as err:  # the interruption stays what ends the run; this says what is missing
        print(f"interrupted: {err}", file=sys.stderr)
        return
    print(f"interrupted: {run / MODEL} holds the weights of epoch {epoch}", file=sys.stderr)


def _launch(args: argparse.Namespace, trainer: TrainingBackend, run_dir: Path) -> int:
    """Start `--nproc` workers of this command through the backend (the spec is already
    checked, so bad input is reported once, here)."""
    if args.nproc < 1:
        raise UsageError(f"--nproc {args.nproc}: expected a number of processes >= 1")
    if "WORLD_SIZE" in os.environ:
        raise UsageError("--nproc: this process is already a torchrun worker; set the processes with torchrun's --nproc-per-node")
    worker = ["train", args.spec, "-o", str(run_dir), "--device", args.device, "--backend", args.backend]
    worker += [item for override in args.overrides for item in ("--set", override)]
    worker += ["--resume"] * args.resume + ["--no-progress"] * (not shows_progress(args))
    worker += [] if args.threads is None else ["--threads", str(args.threads)]
    worker += [item for name in parse_names(args.log) for item in ("--log", name)]
    return trainer.launch(args.nproc, worker)


def resume_command(args: argparse.Namespace, run_dir: Path) -> str:
    """The command line that continues this run where it stopped (same spec and
    overrides, which the checkpoint's fingerprint holds it to, the same threads and the
    same training backend)."""
    words = ["rnnc", "train", args.spec, "-o", str(run_dir), "--resume"]
    words += [item for override in args.overrides for item in ("--set", override)]
    words += [] if args.threads is None else ["--threads", str(args.threads)]
    words += [] if args.device == "auto" else ["--device", args.device]
    words += [item for name in parse_names(getattr(args, "log", ())) for item in ("--log", name)]
    words += [] if args.backend == TRAINER else ["--backend", args.backend]
    return shlex.join(words)


def placed(spec: str, problems: Sequence[Problem], overrides: Sequence[str] = ()) -> list[Problem]:
    """A backend's problems (named by the model, without a position) at their places:
    in the spec file, or the `--set` override that wrote the setting."""
    from rnnc.loader import load_file
    from rnnc.overrides import apply_overrides

    doc = apply_overrides(load_file(spec), overrides)
    return [dataclasses.replace(p, origin=(pos := doc.where(p.json_path)).origin, line=pos.line, column=pos.column) for p in problems]
