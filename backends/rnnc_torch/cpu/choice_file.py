"""Choices measured once on this machine and kept in a file, so that every later run
makes the same ones (the routes they choose between round differently, and training
must stay deterministic for a seed).

`ChoiceFile(stem, values, machine)` keeps `key -> value` in
`$XDG_CACHE_HOME/rnnc/<stem>-<digest>.json` (`~/.cache` without the variable), the
digest taken over `machine()`: what the choices depend on (the CPU model and flags,
library versions). `get` answers from this process's choices, else the file's;
`remember` adds one to both, merged with what other processes wrote since (a file that
cannot be written keeps it in memory); `forget` drops this process's (tests). A file
that is missing, unreadable or holds a value outside `values` counts as no choice, so
that choice is measured again.

`setting(env, values)` reads the environment variable that overrides such choices:
`auto` (unset or empty), one of `values`, or a usage error naming them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from rnnc.artifacts import atomic_write_bytes
from rnnc.errors import UsageError

_settings: dict[tuple[str, str | None], str] = {}  # (variable, raw value) -> setting: asked on every layer call


def setting(env: str, values: tuple[str, ...]) -> str:
    """`env`'s value: auto (the default), or one of `values`; anything else is a usage error."""
    raw = os.environ.get(env)
    value = _settings.get((env, raw))
    if value is None:
        value = (raw or "auto").strip().lower() or "auto"
        if value not in ("auto", *values):
            raise UsageError(f"{env}: expected auto, {', '.join(values[:-1])} or {values[-1]}, got '{raw}'")
        _settings[env, raw] = value
    return value


class ChoiceFile:
    def __init__(self, stem: str, values: tuple[str, ...], machine: Callable[[], dict[str, str]]) -> None:
        self.stem, self.values, self.machine = stem, values, machine
        self._chosen: dict[str, str] = {}
        self._loaded = False

    def path(self) -> Path:
        """This machine's file of choices."""
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        digest = hashlib.sha1(json.dumps(self.machine(), sort_keys=True).encode()).hexdigest()[:16]
        return base / "rnnc" / f"{self.stem}-{digest}.json"

    def get(self, key: str) -> str | None:
        if not self._loaded:
            self._chosen.update({k: v for k, v in self._read().items() if k not in self._chosen})
            self._loaded = True
        return self._chosen.get(key)

    def remember(self, key: str, value: str) -> None:
        self._chosen[key] = value
        merged = {**self._read(), **self._chosen}
        try:
            path = self.path()
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, json.dumps({"machine": self.machine(), "choices": merged}, indent=1, sort_keys=True).encode())
        except OSError:
            pass

    def forget(self) -> None:
        self._chosen.clear()
        self._loaded = False

    def _read(self) -> dict[str, str]:
        try:
            found = json.loads(self.path().read_text()).get("choices", {})
        except (OSError, ValueError, AttributeError):
            return {}  # none yet, or unreadable: measured again
        return {k: v for k, v in found.items() if v in self.values} if isinstance(found, dict) else {}
