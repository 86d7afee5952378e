"""A compressed `.npz` inflated once into the data cache, its rows read from there by offset.

A member that `numpy.savez_compressed` deflated cannot be read a row at a time in the
archive; `spill_npz` inflates each member once, a piece at a time (bounded memory,
however large), into a `.npy` file of `rnnc.spill`'s cache, which the next run on the
same archive reuses, and hands back the files for `rnnc.rows.NpyDirRows`. A member
that does not inflate (a damaged archive) is one `DataError` naming the archive and the
member. Needs numpy only.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import Any

from .errors import DataError
from .npy_header import read_header
from .rows import NpyFile, check_header, checked_header
from .spill import cached, progress

DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError, OSError)
PIECE = 1 << 20  # bytes inflated at a time


def members(path: Path) -> list[zipfile.ZipInfo] | None:
    """The archive's members, when every one is a `.npy`; None otherwise (not a zip,
    another kind of member: the caller loads it whole, and its reader says what is wrong)."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError):
        return None
    if not infos or any(not i.filename.endswith(".npy") for i in infos):
        return None
    return infos


def npz_bytes(path: Path) -> int:
    """The bytes of a `.npz`'s arrays, inflated (its size on disk when it is not a zip of them)."""
    infos = members(path)
    return max(path.stat().st_size, sum(i.file_size for i in infos) if infos else 0)


def spill_npz(path: Path) -> dict[str, NpyFile] | None:
    """Every member of the `.npz` at `path`, inflated into the data cache (once), by
    array name, for `NpyDirRows(path, files=...)`; None for an archive that is not a
    zip of `.npy` members."""
    infos = members(path)
    if infos is None:
        return None
    names = [i.filename.removesuffix(".npy") for i in infos]
    return cached("npz", [path], names, str(path), _read, lambda folder: _write(path, folder))


def _write(path: Path, folder: Path) -> dict[str, Any]:
    origin = str(path)
    written = {}
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        with progress(sum(i.file_size for i in infos), "B", f"inflating {path.name}") as bar:
            for i, info in enumerate(infos):
                name = info.filename.removesuffix(".npy")
                target = folder / f"m{i}.npy"
                try:
                    with archive.open(info) as member:
                        header = read_header(member, origin, name)
                        check_header(header, f"{origin}: '{name}'", 0, info.file_size)
                    with archive.open(info) as member, target.open("wb") as out:
                        while piece := member.read(PIECE):
                            out.write(piece)
                            bar.update(len(piece))
                except DAMAGE as err:
                    raise DataError(f"{origin}: '{name}' is damaged ({' '.join(str(err).split()) or type(err).__name__})") from None
                if target.stat().st_size != info.file_size:
                    raise DataError(f"{origin}: '{name}' ends early: truncated or damaged")
                written[name] = target.name
    return {"members": written}


def _read(folder: Path, manifest: dict[str, Any]) -> dict[str, NpyFile]:
    return {name: NpyFile(folder / file, checked_header(folder / file)) for name, file in manifest["members"].items()}
