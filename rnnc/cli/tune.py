"""`rnnc tune SPEC --space SPACE.yaml [--trials N] [--jobs J] [--storage URL] [--study NAME] [--timeout S] [--monitor M] [--resume] [--dry-run] [-o DIR]`.

A hyperparameter search on Optuna (docs/tune.md): the space file's paths and ranges
are checked against the spec before any trial (`--dry-run` stops there and prints the
space); each trial then trains with `rnnc train` in its own process and run directory
(DIR/trials/NNNN), pruned from its per-epoch monitored value. The study lives in
DIR/study.db (SQLite) unless `--storage` names another, so `--resume` continues an
interrupted one and workers on other machines can join it. At the end: a table of the
trials, DIR/best.yaml, DIR/best (the best trial's run) and the plots. Exit status: 0
done, 2 bad input, 130 interrupted (with the command that resumes).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
from pathlib import Path

from rnnc.cli.check import add_overrides_argument
from rnnc.cli.progress import add_progress_argument, shows_progress
from rnnc.errors import UsageError

EXIT_INTERRUPTED = 130


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("tune", help="hyperparameter search on Optuna: trials of rnnc train, the best spec, plots")
    parser.add_argument("spec", metavar="SPEC", help="spec file (YAML)")
    parser.add_argument("--space", required=True, metavar="SPACE", help="search space file (YAML): --set paths with a distribution each")
    add_overrides_argument(parser)
    parser.add_argument("--trials", type=int, metavar="N", help="trials in the study in all (default 20; none with --timeout alone)")
    parser.add_argument("--jobs", type=int, default=1, metavar="J", help="trials at once in this process (default 1); the cores are split between them")
    parser.add_argument("--storage", metavar="URL", help="an Optuna storage URL, or a file: *.db SQLite, else a journal file (default DIR/study.db)")
    parser.add_argument("--study", metavar="NAME", help="the study's name in the storage (default: the spec's name)")
    parser.add_argument("--timeout", type=float, metavar="S", help="start no trial after S seconds")
    parser.add_argument("--monitor", metavar="M", help="the logged value to optimise (default: the space's monitor, early stopping's, else val_loss)")
    parser.add_argument("--resume", action="store_true", help="continue the study in the storage, or join it from another worker")
    parser.add_argument("--dry-run", action="store_true", help="check the spec and the space, print the space, run nothing")
    parser.add_argument("-o", "--output", dest="out", metavar="DIR", help="the study's directory (default: runs/tune-<name>)")
    parser.add_argument("--log", action="append", default=[], metavar="TRACKER",
                        help="each trial's rnnc train --log (tensorboard, mlflow); with mlflow the trials nest under one run of the study")
    add_progress_argument(parser, "no progress bar over trials; the per-trial lines stay")
    parser.set_defaults(run=run)


def _objective(args: argparse.Namespace, model, space) -> tuple[str, bool, bool]:  # type: ignore[no-untyped-def]
    """The monitored value, whether it is maximised, and whether runs keep its best epoch."""
    from rnnc.build import monitor_mode

    stop = model.training.early_stopping
    monitor = args.monitor or space.monitor or (stop.monitor if stop else "val_loss" if model.data.validation or model.training.validation_split else "loss")
    direction = space.direction or ("maximize" if monitor_mode(monitor) == "max" else "minimize")
    keeps_best = stop is not None and stop.restore_best and stop.monitor == monitor
    if model.graph is None:
        name = monitor.removeprefix("val_")
        if name != "loss" and name not in model.metrics:
            raise UsageError(f"--monitor {monitor}: the spec logs loss and {', '.join(model.metrics) or 'no metrics'}; "
                             "monitor one of them (val_ for the validation data)")
        if monitor.startswith("val_") and not (model.data.validation or model.training.validation_split):
            raise UsageError(f"--monitor {monitor}: the spec has no validation data (data.validation or training.validation_split)")
    return monitor, direction == "maximize", keeps_best


def run(args: argparse.Namespace) -> int:
    from rnnc.spec import load_model, resolved_spec, spec_hash
    from rnnc.tune.space import load_space
    from rnnc.tune.study import optuna_module

    for flag, value in (("--trials", args.trials), ("--jobs", args.jobs)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} {value}: expected a number >= 1")
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError(f"--timeout {args.timeout:g}: expected seconds > 0")
    space = load_space(args.space, args.spec, args.overrides)
    model = load_model(args.spec, args.overrides)
    monitor, maximize, keeps_best = _objective(args, model, space)
    n_trials = args.trials if args.trials is not None or args.timeout is not None else 20
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    if args.dry_run:
        print(f"{args.space}: {len(space.params)} settings of {args.spec}")
        for param in space.params:
            print(f"  {param.path}: {param.describe()}")
        print(f"{'maximize' if maximize else 'minimize'} {monitor}; sampler {space.sampler}, pruner {space.pruner}; "
              f"{n_trials or 'unlimited'} trials, {args.jobs} at once, {threads} threads each")
        return 0
    optuna_module()
    out = Path(args.out) if args.out else Path("runs") / f"tune-{model.name}"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"-o {out}: cannot create the directory: {err.strerror or err}") from None
    settings = {"spec": spec_hash(resolved_spec(args.spec, args.overrides)), "space": space.describe(), "monitor": monitor,
                "direction": "maximize" if maximize else "minimize", "sampler": space.sampler, "pruner": space.pruner}
    return _search(args, space, model.name, settings, monitor, maximize, keeps_best, n_trials, threads, out)


def _search(args, space, name, settings, monitor, maximize, keeps_best, n_trials, threads, out) -> int:  # type: ignore[no-untyped-def]
    from tqdm import tqdm

    from rnnc.tune.report import shown, table, write_best, write_plots
    from rnnc.tune.study import counted, open_storage, open_study, optuna_module, requeue_interrupted, run_trials
    from rnnc.tune.trial import Trainer

    storage = open_storage(args.storage, out)
    study_name = args.study or name
    study = open_study(storage, study_name, settings, space, args.resume)
    if args.resume and (queued := requeue_interrupted(study, storage)):
        print(f"resuming: {queued} interrupted trial{'s' * (queued > 1)} queued again", file=sys.stderr)
    from rnnc.tracking import parse_names

    trackers = parse_names(args.log)
    extra = [word for tracker in trackers for word in ("--log", tracker)]
    trainer = Trainer(args.spec, list(args.overrides), monitor, maximize, keeps_best, threads, extra)
    bar = tqdm(total=n_trials, initial=min(counted(study), n_trials or 0), unit="trial", desc="trials",
               disable=not shows_progress(args), file=sys.stderr, dynamic_ncols=True)

    def done(trial) -> None:  # type: ignore[no-untyped-def]
        what = f"{monitor} {trial.value:.4f}" if trial.value is not None else trial.user_attrs.get("reason", "")
        bar.write(f"trial {trial.number} {trial.state.name.lower()}: {what}  ({' '.join(f'{k}={shown(v)}' for k, v in trial.params.items())})", file=sys.stderr)
        bar.update(1)

    try:
        with _study_run(trackers, out, study_name, settings):
            run_trials(study, storage, space, trainer, out, n_trials, args.jobs, args.timeout, done)
    except KeyboardInterrupt:
        bar.close()
        print(f"rnnc tune: interrupted; continue the study with: {_resume_command(args, out)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit:  # SIGTERM, SIGHUP: the trials are stopped and marked as for Ctrl-C
        bar.close()
        print(f"rnnc tune: stopped; continue the study with: {_resume_command(args, out)}", file=sys.stderr)
        raise
    bar.close()
    trials = study.get_trials(deepcopy=False)
    print(table(trials, [p.path for p in space.params], monitor, maximize))
    states = optuna_module().trial.TrialState
    if any(t.state == states.COMPLETE for t in trials):
        best = study.best_trial
        test = best.user_attrs.get("test")
        tested = f"; test {'  '.join(f'{k} {v:.4f}' for k, v in test.items())}" if test else ""
        print(f"best: trial {best.number}, {monitor} {best.value:.4f}{tested}")
        for line in write_best(best, args.spec, list(args.overrides), out, study_name, monitor):
            print(line)
    else:
        print("no trial completed: no best.yaml", file=sys.stderr)
    for line in write_plots(study, out):
        print(line)
    return 0


def _study_run(trackers: tuple[str, ...], out: Path, name: str, settings: dict):  # type: ignore[no-untyped-def]
    """With `--log mlflow`, the study's MLflow run, which each trial's run is nested under
    (in the store its trials use: DIR/trials/mlruns unless MLFLOW_TRACKING_URI says)."""
    if "mlflow" not in trackers:
        return contextlib.nullcontext()
    try:
        from rnnc.tracking.mlflow_run import parent_run
    except ImportError:
        raise UsageError("--log mlflow needs MLflow: pip install 'rnnc[track]'") from None
    return parent_run(out / "trials", name, {"monitor": settings["monitor"], "direction": settings["direction"],
                                             "sampler": settings["sampler"], "pruner": settings["pruner"], **settings["space"]})


def _resume_command(args: argparse.Namespace, out: Path) -> str:
    words = ["rnnc", "tune", args.spec, "--space", args.space, "-o", str(out), "--resume"]
    words += [w for o in args.overrides for w in ("--set", o)]
    for flag, value in (("--trials", args.trials), ("--jobs", args.jobs if args.jobs != 1 else None), ("--storage", args.storage),
                        ("--study", args.study), ("--monitor", args.monitor)):
        words += [] if value is None else [flag, str(value)]
    words += [w for tracker in args.log for w in ("--log", tracker)]
    return shlex.join(words)
