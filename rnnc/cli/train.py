"""`rnnc train SPEC [-o RUN_DIR] [--set KEY=VALUE ...] [--resume] [--device auto|cpu|cuda] [--nproc N]`.

Loads the spec (with overrides), then hands the model to the backend that can train
(`torch`), which checks the data, trains with a progress bar and one line per epoch,
and leaves a run directory. Exit status: 0 trained, 1 training failed while running
(the loss diverged, model.onnx could not be written), 2 bad input (spec, data, command
line, export settings the ONNX backend refuses, checked before training), 130
interrupted (Ctrl-C: the last completed epoch is kept, as `model.onnx` too, and one line
gives the exact command that continues the run). The core imports no
torch: the backend is found through the `rnnc.backends` entry points. `--nproc N`
checks the spec here, then has torchrun start N workers on this machine, each running
this same command (docs/distributed.md); torch is imported only then.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
from pathlib import Path

from rnnc.cli.check import add_overrides_argument
from rnnc.cli.progress import add_progress_argument, shows_progress
from rnnc.errors import Problem, SpecError, TrainingError, UsageError

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a spec; writes a run directory (weights, checkpoint, metrics)")
    parser.add_argument("spec", metavar="SPEC", help="spec file (YAML)")
    parser.add_argument("-o", "--output", dest="run_dir", metavar="RUN_DIR", help="run directory (default: runs/<name>)")
    add_overrides_argument(parser)
    parser.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from its last completed epoch")
    parser.add_argument("--device", default="auto", metavar="DEVICE", help="auto (default: cuda when available), cpu or cuda")
    add_progress_argument(parser, "no progress bar; the per-epoch lines stay")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="torch's intra-op threads (default: torch's own, the cores); pin it to repeat a run bit for bit on another machine")
    parser.add_argument("--nproc", type=int, default=1, metavar="N",
                        help="data-parallel worker processes on this machine, started by torchrun (default 1; see docs/distributed.md)")
    parser.add_argument("--backend", default="torch", help=argparse.SUPPRESS)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rnnc.plugins import get_backend
    from rnnc.spec import load_model, resolved_spec

    model = load_model(args.spec, args.overrides)
    spec = resolved_spec(args.spec, args.overrides)
    # Data paths as the run saw them, so the saved spec trains again from anywhere.
    if isinstance(spec.get("data"), dict):
        for role in ("train", "validation", "test"):
            if getattr(model.data, role):
                spec["data"][role] = getattr(model.data, role)
    backend = get_backend(args.backend, "train")
    train = getattr(backend, "train", None)
    if train is None:
        raise UsageError(f"backend '{args.backend}' says it can train but has no train()")
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / model.name
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads {args.threads}: expected a number of threads >= 1")
    if args.nproc != 1:
        return _launch(args, backend, run_dir)
    try:
        threads = {} if args.threads is None else {"threads": args.threads}
        train(model, run_dir, spec=spec, resume=args.resume, device=args.device, progress=shows_progress(args), **threads)
    except TrainingError as err:
        print(f"rnnc train: {err}", file=sys.stderr)
        return 1
    except SpecError as err:  # export settings the exporter refuses: placed in the spec file
        raise SpecError(_placed(args.spec, list(err.problems))) from None
    except KeyboardInterrupt:
        print(f"rnnc train: interrupted; continue the run with: {resume_command(args, run_dir)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _launch(args: argparse.Namespace, backend: object, run_dir: Path) -> int:
    """Start `--nproc` workers of this command through torchrun (the spec is already
    checked, so bad input is reported once, here)."""
    if args.nproc < 1:
        raise UsageError(f"--nproc {args.nproc}: expected a number of processes >= 1")
    if "WORLD_SIZE" in os.environ:
        raise UsageError("--nproc: this process is already a torchrun worker; set the processes with torchrun's --nproc-per-node")
    launch = getattr(backend, "launch", None)
    if launch is None:
        raise UsageError(f"--nproc: backend '{args.backend}' cannot start distributed workers")
    worker = ["train", args.spec, "-o", str(run_dir), "--device", args.device, "--backend", args.backend]
    worker += [item for override in args.overrides for item in ("--set", override)]
    worker += ["--resume"] * args.resume + ["--no-progress"] * (not shows_progress(args))
    worker += [] if args.threads is None else ["--threads", str(args.threads)]
    return launch(args.nproc, worker)


def resume_command(args: argparse.Namespace, run_dir: Path) -> str:
    """The command line that continues this run where it stopped (same spec and
    overrides, which the checkpoint's fingerprint holds it to, and the same threads)."""
    words = ["rnnc", "train", args.spec, "-o", str(run_dir), "--resume"]
    words += [item for override in args.overrides for item in ("--set", override)]
    words += [] if args.threads is None else ["--threads", str(args.threads)]
    words += [] if args.device == "auto" else ["--device", args.device]
    return shlex.join(words)


def _placed(spec: str, problems: list[Problem]) -> list[Problem]:
    """A backend's problems (named by the model, without a position) at their places in
    the spec file."""
    from rnnc.loader import load_file

    doc = load_file(spec)
    return [dataclasses.replace(p, origin=spec, line=(pos := doc.where(p.json_path)).line, column=pos.column) for p in problems]
