"""The study: its storage, its settings (held on `--resume`), and trials run in parallel.

Storage is any Optuna URL (`sqlite:///...`, `postgresql://...`) or a path: `*.db`,
`*.sqlite` is SQLite, anything else Optuna's journal file. Trials are claimed under a
lock (a lock file beside a local storage, so workers in several processes on this
machine share it too): the count of trials started is read and the next one asked for
at once, so N trials are run in all, none twice. A trial left unfinished by an
interrupted study is re-queued with its point by `--resume`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnc.errors import UsageError

from .space import Space
from .trial import Interrupted, Trainer, TrialFailed, TrialPruned

INTERRUPTED, REQUEUED, WORKER = "interrupted", "requeued", "worker"
# beside the storage; not `.lock`, the name Optuna's journal file gives its own lock
LOCK = ".rnnc-tune-lock"


def optuna_module() -> Any:
    try:
        import optuna
    except ImportError:
        raise UsageError("rnnc tune needs Optuna: pip install 'rnnc[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # rnnc says what each trial did
    return optuna


@dataclass(frozen=True)
class Storage:
    url: str  # as the user reads it
    storage: Any  # an Optuna storage
    lock_path: Path | None  # local storages: the lock file workers on this machine share


def open_storage(given: str | None, out: Path) -> Storage:
    optuna = optuna_module()
    if given is None:
        path = out / "study.db"
        return Storage(f"sqlite:///{path}", optuna.storages.RDBStorage(f"sqlite:///{path.resolve()}"), path.with_name(path.name + LOCK))
    if "://" in given:
        local = Path(given.split(":///", 1)[1]) if given.startswith("sqlite:///") else None
        try:
            storage = optuna.storages.RDBStorage(given)
        except Exception as err:  # noqa: BLE001 - SQLAlchemy's many errors: a bad URL or an unreachable server
            raise UsageError(f"--storage {given}: cannot open: {str(err).splitlines()[0]}") from None
        return Storage(given, storage, local.with_name(local.name + LOCK) if local else None)
    path = Path(given)
    if path.suffix in (".db", ".sqlite", ".sqlite3"):
        return open_storage(f"sqlite:///{path.resolve()}", out)
    from optuna.storages.journal import JournalFileBackend

    try:
        backend = JournalFileBackend(str(path))
    except OSError as err:
        raise UsageError(f"--storage {given}: cannot open the journal file: {err.strerror or err}") from None
    return Storage(given, optuna.storages.JournalStorage(backend), path.with_name(path.name + LOCK))


def make_sampler(space: Space, offset: int = 0) -> Any:
    """The space's sampler; `offset` (the trials a resumed study has) moves its seed on,
    so a resumed study does not draw its first points again."""
    optuna = optuna_module()
    seed = None if space.seed is None else space.seed + offset
    if space.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(space: Space) -> Any:
    optuna = optuna_module()
    if space.pruner == "none":
        return optuna.pruners.NopPruner()
    if space.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=5)


def open_study(storage: Storage, name: str, settings: dict[str, Any], space: Space, resume: bool) -> Any:
    """The study `name`, created, or loaded when `resume` and its settings are these."""
    optuna = optuna_module()
    names = {s.study_name for s in storage.storage.get_all_studies()}
    if name in names:
        trials = len(storage.storage.get_all_trials(storage.storage.get_study_id_from_name(name), deepcopy=False))
        study = optuna.load_study(study_name=name, storage=storage.storage, sampler=make_sampler(space, trials), pruner=make_pruner(space))
        kept = study.user_attrs.get("rnnc")
        if kept is None:
            raise UsageError(f"--study {name}: the study in {storage.url} was not made by rnnc tune; choose another --study")
        changed = [key for key in settings if kept.get(key) != settings[key]]
        if changed:
            raise UsageError(f"--resume: study '{name}' in {storage.url} was made with another {', '.join(changed)}; "
                             "resume it with the same spec, space and --monitor, or start another with --study/-o")
        if not resume and counted(study) > 0:
            raise UsageError(f"study '{name}' in {storage.url} already has {counted(study)} trials: pass --resume to continue "
                             "it (or to join it from another worker), or start another with --study/-o")
        return study
    direction = settings["direction"]
    study = optuna.create_study(study_name=name, storage=storage.storage, direction=direction, load_if_exists=True,
                                sampler=make_sampler(space), pruner=make_pruner(space))
    study.set_user_attr("rnnc", settings)
    return study


def counted(study: Any) -> int:
    """Trials that count toward --trials: started or finished, not re-queued leftovers."""
    states = _states()
    return sum(1 for t in study.get_trials(deepcopy=False) if t.state != states.WAITING and not _redone(t))


def _redone(t: Any) -> bool:
    return bool(t.user_attrs.get(INTERRUPTED))


def _states() -> Any:
    return optuna_module().trial.TrialState


def requeue_interrupted(study: Any, storage: Storage) -> int:
    """Mark the trials an interrupted worker of this machine left running as failed
    (interrupted) and queue their points again; how many were queued."""
    states, host = _states(), socket.gethostname()
    done = set(study.user_attrs.get(REQUEUED, []))  # finished trials take no more attributes: the study keeps the list
    queued = []
    for t in study.get_trials(deepcopy=False):
        worker = t.user_attrs.get(WORKER, "")
        if t.state == states.RUNNING and worker.rpartition(":")[0] == host and not _alive(int(worker.rpartition(":")[2])):
            storage.storage.set_trial_user_attr(t._trial_id, INTERRUPTED, True)
            storage.storage.set_trial_state_values(t._trial_id, states.FAIL)
        elif not (t.state == states.FAIL and t.user_attrs.get(INTERRUPTED)):
            continue
        if t.number in done:
            continue
        study.enqueue_trial(t.params, skip_if_exists=False)
        queued.append(t.number)
    if queued:
        study.set_user_attr(REQUEUED, sorted(done | set(queued)))
    return len(queued)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _claim(lock: threading.Lock, path: Path | None) -> Iterator[None]:
    with lock:
        if path is None:
            yield
            return
        with open(path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def run_trials(study: Any, storage: Storage, space: Space, trainer: Trainer, out: Path, n_trials: int | None,
               jobs: int, timeout: float | None, on_done: Callable[[Any], None]) -> None:
    """Run trials in `jobs` threads until the study holds `n_trials` (or `timeout` s
    have passed); `on_done(frozen trial)` after each. Ctrl-C or a signal stops every
    trial (each marked interrupted, queued again by `--resume`) and is raised."""
    lock, start = threading.Lock(), time.monotonic()
    errors: list[BaseException] = []

    def next_trial() -> Any | None:
        with _claim(lock, storage.lock_path):
            if trainer.stop.is_set() or (timeout is not None and time.monotonic() - start >= timeout):
                return None
            if n_trials is not None and counted(study) >= n_trials:
                return None
            trial = study.ask()
            trial.set_user_attr(WORKER, f"{socket.gethostname()}:{os.getpid()}")
            point = [p.override(p.suggest(trial)) for p in space.params]
            trial.set_user_attr("overrides", point)
            return trial

    def work() -> None:
        try:
            while (trial := next_trial()) is not None:
                on_done(_one(study, trial, trainer, out))
        except BaseException as err:  # noqa: BLE001 - handed to the main thread
            errors.append(err)
            trainer.stop.set()

    threads = [threading.Thread(target=work, daemon=True) for _ in range(jobs)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.5)
    except BaseException:
        trainer.stop.set()
        for thread in threads:
            thread.join()
        raise
    if errors:
        raise errors[0]


def _one(study: Any, trial: Any, trainer: Trainer, out: Path) -> Any:
    states = _states()
    run_dir = out / "trials" / f"{trial.number:04d}"
    trial.set_user_attr("run_dir", str(run_dir.resolve()))
    began = time.monotonic()
    try:
        value, logs = trainer.run(trial, trial.user_attrs["overrides"], run_dir)
    except TrialPruned as why:
        trial.set_user_attr("reason", str(why))
        state, value = states.PRUNED, None
    except TrialFailed as why:
        trial.set_user_attr("reason", str(why))
        state, value = states.FAIL, None
    except Interrupted:
        trial.set_user_attr(INTERRUPTED, True)
        trial.set_user_attr("reason", "interrupted")
        study.tell(trial, state=states.FAIL)
        raise KeyboardInterrupt from None
    else:
        state = states.COMPLETE
        trial.set_user_attr("epochs", logs["epochs"])
        if logs["test"]:
            trial.set_user_attr("test", logs["test"])
    trial.set_user_attr("seconds", round(time.monotonic() - began, 1))
    study.tell(trial, value, state=state) if state == states.COMPLETE else study.tell(trial, state=state)
    return study._storage.get_trial(trial._trial_id)
