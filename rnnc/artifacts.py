"""Writing artifacts atomically, and the framework-neutral weights file.

Every file rnnc writes goes to a temporary file in the same directory, is flushed to
disk and then renamed over the target, so a crash leaves either the old file or the
new one, never half of one; a full disk leaves the old one and a one-line error. Weights are a safetensors file of float32 numpy arrays
named as the IR names them (`layers.<index>.<param>`): no pickle, no torch needed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from . import ir
from .errors import NO_ROOM, ArtifactError, DiskFullError


NAME_MAX = 255  # bytes in one file name, where the file system does not say (Linux, macOS)


def write_error(target: Path, err: OSError) -> DiskFullError | ArtifactError:
    """One line for a failed write: `DiskFullError` (exit 1) when there is no room,
    `ArtifactError` (exit 2: a bad output path) otherwise."""
    kept = "the previous file is intact" if target.exists() else "nothing was written"
    message = f"{target}: cannot write: {err.strerror or err}; {kept}"
    return DiskFullError(message) if err.errno in NO_ROOM else ArtifactError(message)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO]:
    """Open a temporary sibling of `path` for writing; rename it over `path` on success.

    A failed write (no room, no permission, a path through a file, a name too long)
    raises `DiskFullError` or `ArtifactError` with one line, and leaves `path` as it
    was, with no temporary file and none of the folders it made for `path`. A `path`
    that is a symbolic link gets its target written, the link kept. After the rename
    the folder is flushed too, so the new name itself survives a power cut.
    """
    target = Path(path)
    real = Path(os.path.realpath(target))  # a link stays a link: write where it points
    made: list[Path] = []
    try:
        _check_name(target, real)
        made = [p for p in (real.parent, *real.parent.parents) if not p.exists()][::-1]
        real.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _temporary(real)
    except OSError as err:
        _remove(made)
        raise write_error(target, err) from None
    written = False  # past the caller's block: any OSError now is the write's own
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            written = True
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, real)
    except BaseException as err:  # SystemExit from SIGTERM/SIGHUP (rnnc.cli) and Ctrl-C too
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        _remove(made)
        # An OSError from the caller's block may be about another file, unless it is about room.
        if isinstance(err, OSError) and (written or err.errno in NO_ROOM):
            raise write_error(target, err) from None
        raise
    _sync_folder(real.parent)


def _name_max(folder: Path) -> int:
    for existing in (folder, *folder.parents):
        if existing.is_dir():
            with contextlib.suppress(OSError, ValueError):
                return os.pathconf(existing, "PC_NAME_MAX")
            break
    return NAME_MAX


def _check_name(target: Path, real: Path) -> None:
    limit, size = _name_max(real.parent), len(os.fsencode(real.name))
    if size > limit:
        raise ArtifactError(f"{target}: cannot write: the file name is {size} bytes long, the file system takes at most {limit}; nothing was written")


def _temporary(real: Path) -> tuple[int, str]:
    """A new `.NAME.XXXXXXXX.tmp` beside `real`, NAME cut to keep within the name limit.
    Made with mode 0666 for the kernel to apply the umask, as for any new file (mkstemp's
    0600 would make artifacts private; asking for the umask would change it process-wide)."""
    room = _name_max(real.parent) - len(".12345678.tmp.")
    prefix = os.fsencode(real.name)[:room].decode("utf-8", "ignore") or "artifact"
    while True:
        tmp = str(real.parent / f".{prefix}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666), tmp
        except FileExistsError:
            continue


def _remove(made: list[Path]) -> None:
    """Remove the folders an unfinished write made, the deepest first (unless something
    else has put a file in one meanwhile)."""
    for folder in reversed(made):
        with contextlib.suppress(OSError):
            folder.rmdir()


def _sync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    with contextlib.suppress(OSError):  # some file systems cannot fsync a folder; the file is safe
        os.fsync(fd)
    os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


CHECKSUM_KEY = "rnnc_sha256"  # in a weights file's metadata: see `weights_sha256`


def weights_sha256(weights: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> str:
    """The checksum `save_weights` records: sha256 over the metadata (but this key) and
    then the tensors, each in name order: a key and its value; a tensor's name, dtype,
    shape and little-endian bytes. A flipped bit anywhere in what the file means then
    makes it refused instead of a silently different model (or different class names)."""
    digest = hashlib.sha256()
    for key in sorted(metadata):
        if key != CHECKSUM_KEY:
            digest.update(json.dumps(["metadata", key, metadata[key]]).encode() + b"\n")
    for name in sorted(weights):
        array = np.asarray(weights[name])
        digest.update(json.dumps([name, array.dtype.name, list(array.shape)]).encode() + b"\n")
        digest.update(np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes())
    return digest.hexdigest()


def save_weights(path: str | os.PathLike[str], weights: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None) -> None:
    """Write float32 `weights` as safetensors with `metadata` and its checksum; the same
    weights and metadata give the same bytes (keys and names are written sorted)."""
    arrays = {name: np.ascontiguousarray(value, dtype="<f4") for name, value in weights.items()}
    meta = {**(metadata or {}), CHECKSUM_KEY: ""}
    meta[CHECKSUM_KEY] = weights_sha256(arrays, meta)
    atomic_write_bytes(path, _safetensors_bytes(arrays, meta))


def _safetensors_bytes(arrays: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> bytes:
    """The safetensors layout (8-byte header length, JSON header padded with spaces to
    8 bytes, the tensors' bytes back to back), written here rather than by
    `safetensors.numpy.save`, whose header comes out in a different key order each time."""
    header: dict[str, Any] = {"__metadata__": dict(metadata)}
    blobs, offset = [], 0
    for name in sorted(arrays):
        blob = arrays[name].tobytes()
        header[name] = {"dtype": "F32", "shape": list(arrays[name].shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(blobs)


def load_weights(path: str | os.PathLike[str], model: ir.Model | None = None) -> dict[str, np.ndarray]:
    """Read a weights file and verify its checksum; with `model`, check that it holds
    exactly the model's parameters."""
    weights, _ = read_weights(path)
    if model is not None:
        check_weights(weights, model, str(path))
    return weights


def load_weights_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The string metadata stored in a weights file's header (`rnnc train` records the
    spec hash, the epoch and, for named classes, `classes` as a JSON list), verified
    with the tensors against the file's checksum."""
    return read_weights(path)[1]


def read_weights(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """A weights file's tensors and metadata. A file with a checksum (`CHECKSUM_KEY`,
    what `save_weights` writes) must match it; one without (older runs, files made by
    other tools) is read as it is."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ArtifactError(f"{path}: cannot read weights: {err.strerror or err}") from None
    try:
        weights = load(data)
        # safetensors has checked the header already; its metadata is read from the same bytes
        metadata = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")]).get("__metadata__") or {}
    except (SafetensorError, ValueError, OSError) as err:
        raise ArtifactError(f"{path}: not a safetensors weights file ({err})") from None
    stored = metadata.get(CHECKSUM_KEY)
    if stored is None and any(_near_checksum_key(key) for key in metadata):
        stored = "(its checksum key is damaged)"
    if stored is not None and stored != weights_sha256(weights, metadata):
        raise ArtifactError(f"{path}: damaged weights file: its tensors or metadata do not match the checksum it was saved with")
    return weights, metadata


def _near_checksum_key(key: str) -> bool:
    """Whether `key` is `CHECKSUM_KEY` with a few bits flipped: a file that had a checksum
    must not pass as one that never had one."""
    if len(key) != len(CHECKSUM_KEY) or key == CHECKSUM_KEY:
        return False
    return sum(bin(ord(a) ^ ord(b)).count("1") for a, b in zip(key, CHECKSUM_KEY, strict=True)) <= 8


def stored_classes(path: str | os.PathLike[str]) -> list[str] | None:
    """The class names `rnnc train` recorded in a weights file's metadata, or None."""
    text = load_weights_metadata(path).get("classes")
    if text is None:
        return None
    try:
        names = json.loads(text)
    except json.JSONDecodeError:
        names = None
    if not isinstance(names, list) or not names:
        raise ArtifactError(f"{path}: the classes in its metadata are not a JSON list of names")
    return [str(name) for name in names]


def model_sha256(data: bytes) -> str:
    """The checksum an exported ONNX model carries under `CHECKSUM_KEY` in its metadata:
    sha256 over every top-level field of the serialized `ModelProto` but the metadata,
    as written (graph with its weights, opsets, producer), then the metadata entries (but
    this key) in key order. Read from the protobuf wire format, so no onnx import."""
    digest = hashlib.sha256()
    entries = []
    for number, field, payload in _wire_fields(data):
        if number == 14:  # metadata_props: StringStringEntryProto {1: key, 2: value}
            parts = {n: p.decode("utf-8", "surrogateescape") for n, _, p in _wire_fields(payload)}
            if parts.get(1, "") != CHECKSUM_KEY:
                entries.append((parts.get(1, ""), parts.get(2, "")))
        else:
            digest.update(field)
    for key, value in sorted(entries):
        digest.update(json.dumps(["metadata", key, value]).encode("utf-8", "surrogateescape") + b"\n")
    return digest.hexdigest()


def check_model_checksum(data: bytes, origin: str) -> None:
    """Refuse a model file whose content does not match the checksum in its metadata
    (what `rnnc_onnx` writes); one without a checksum, or not parseable here (onnxruntime
    then says why), passes. `rnnc.runtime` calls it on the bytes it loads."""
    damaged = ArtifactError(f"{origin}: damaged model file: its graph or metadata do not match the checksum it was written with")
    try:
        stored = {k: v for k, v in _metadata_entries(data) if k == CHECKSUM_KEY or _near_checksum_key(k)}
        actual = model_sha256(data) if stored else ""
    except ValueError:  # not a protobuf message as rnnc writes them
        if CHECKSUM_KEY.encode() in data:
            raise damaged from None
        return
    if stored and stored.get(CHECKSUM_KEY) != actual:
        raise damaged


def _metadata_entries(data: bytes) -> Iterator[tuple[str, str]]:
    for number, _, payload in _wire_fields(data):
        if number == 14:
            parts = {n: p.decode("utf-8", "surrogateescape") for n, _, p in _wire_fields(payload)}  # damage included
            yield parts.get(1, ""), parts.get(2, "")


def _wire_fields(data: bytes) -> Iterator[tuple[int, bytes, bytes]]:
    """(field number, the whole field as written, its payload) of a protobuf message;
    `ValueError` for bytes that are not one."""
    i = 0
    while i < len(data):
        start = i
        tag, i = _varint(data, i)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            _, end = _varint(data, i)
            body = i
        elif wire == 2:
            size, body = _varint(data, i)
            end = body + size
        elif wire in (1, 5):
            body, end = i, i + (8 if wire == 1 else 4)
        else:
            raise ValueError(f"wire type {wire}")
        if end > len(data) or number == 0:
            raise ValueError("truncated")
        yield number, data[start:end], data[body:end]
        i = end


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(data) or shift > 63:
            raise ValueError("bad varint")
        byte = data[i]
        value |= (byte & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if byte < 0x80:
            return value, i


def check_weights(weights: Mapping[str, np.ndarray], model: ir.Model, origin: str) -> None:
    expected = {p.name: p.shape for p in model.params}
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    wrong = sorted(
        f"{name} has shape {list(weights[name].shape)}, the spec needs {list(shape)}"
        for name, shape in expected.items()
        if name in weights and tuple(weights[name].shape) != shape
    )
    problems = []
    if missing:
        problems.append(f"missing {', '.join(missing)}")
    if extra:
        problems.append(f"unexpected {', '.join(extra)}")
    problems += wrong
    # weights are float32 (as save_weights writes them); a cast from complex, bool or int
    # would silently drop or invent values
    problems += [f"{name} holds {weights[name].dtype} values, not float32" for name in sorted(set(expected) & set(weights))
                 if weights[name].dtype != np.float32]
    # a damaged file can still parse; NaN or inf weights would only make NaN predictions
    problems += [f"{name} holds NaN or inf" for name in sorted(set(expected) & set(weights))
                 if weights[name].dtype == np.float32 and not np.isfinite(weights[name]).all()]
    if problems:
        raise ArtifactError(f"{origin}: weights do not fit the spec: {'; '.join(problems)}")
