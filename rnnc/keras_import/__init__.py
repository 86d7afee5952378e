"""`rnnc import`: a Keras model file as a spec and a weights file, without Keras.

`read` (reader) gets the architecture, compile settings and weights out of a `.keras`
or legacy `.h5` file with h5py and the standard library; `convert` (graph, layers,
compile_settings) maps them to a spec (version 1 for a Sequential chain, version 2
for a functional graph) and rnnc's weight names and layouts; `import_model` checks the
result with rnnc's own loader and writes `DIR/spec.yaml` and `DIR/weights.safetensors`
together, or nothing: every layer or argument that cannot be mapped is one problem,
placed at its JSON path in the model's config.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rnnc.errors import Problem, RnncError, SpecError

from .graph import Converted, convert
from .reader import KerasFile, read

SPEC, WEIGHTS = "spec.yaml", "weights.safetensors"
__all__ = ["Imported", "import_model", "read", "convert", "KerasFile", "Converted"]


@dataclass(frozen=True)
class Imported:
    spec_path: Path
    weights_path: Path
    version: int
    layers: int
    params: int
    notes: list[str]


def spec_name(path: Path) -> str:
    """The file's stem as a spec name ([a-z0-9_-]+)."""
    name = re.sub(r"[^a-z0-9_-]+", "-", path.stem.lower()).strip("-")
    return name or "imported"


def import_model(source: str | Path, out_dir: str | Path, force: bool = False) -> Imported:
    """Read `source`, convert it, check it, then write DIR/spec.yaml and DIR/weights.safetensors."""
    from rnnc.artifacts import check_weights, save_weights
    from rnnc.spec import model_from_text

    source, out_dir = Path(source), Path(out_dir)
    keras = read(source)
    converted = convert(keras, spec_name(source))
    if converted.refusals:
        raise SpecError([Problem(str(source), None, None, path, message, ()) for path, message in converted.refusals])
    origin = str(out_dir / SPEC)
    _mask_anywhere(converted, origin, out_dir)
    text = spec_text(converted, keras, out_dir)
    try:
        model = model_from_text(text, origin=origin, base=out_dir)
    except SpecError as err:
        raise SpecError([Problem(str(source), None, None, "", f"the imported spec is refused by rnnc: {p}")
                         for p in err.problems]) from None
    check_weights(converted.weights, model, str(source))
    if out_dir.exists() and not out_dir.is_dir():
        raise RnncError(f"-o {out_dir}: exists and is not a directory")
    if out_dir.is_dir() and (out_dir / SPEC).exists() and not force:
        raise RnncError(f"-o {out_dir}: already holds {SPEC}; pass --force to replace it, or choose another directory")
    metadata = {"rnnc.imported_from": source.name, "rnnc.keras_version": keras.keras_version}
    _write(out_dir, text, converted.weights, metadata, save_weights)
    return Imported(out_dir / SPEC, out_dir / WEIGHTS, int(converted.spec["rnnc"]), len(converted.spec["layers"]),
                    sum(int(np.prod(a.shape)) for a in converted.weights.values()), converted.notes)


def _mask_anywhere(converted: Converted, origin: str, out_dir: Path) -> None:
    """Keras's mask_zero skips a 0 wherever it is; rnnc's `mask_zero: anywhere` does the
    same where the model allows it (one vector per sequence out, no convolution after
    it). Elsewhere `true` stays, the zeros after the last real id, and a note says so."""
    from rnnc.spec import model_from_mapping

    embeddings = [layer for layer in converted.spec.get("layers", [])
                  if layer.get("type") == "embedding" and layer.get("mask_zero") is True]
    if not embeddings or not _declares_anywhere():
        return
    for layer in embeddings:
        layer["mask_zero"] = "anywhere"
    try:
        model_from_mapping(converted.spec, origin, out_dir)
    except SpecError:
        for layer in embeddings:
            layer["mask_zero"] = True
        converted.notes.append("mask_zero: true takes the zeros after each sequence's last real id as padding "
                               "(Keras skips a 0 anywhere; this model's outputs rule out mask_zero: anywhere): "
                               "pad at the end")


def _declares_anywhere() -> bool:
    import dataclasses
    import typing

    from rnnc.layers import Embedding

    hints = typing.get_type_hints(Embedding)
    field = next(f for f in dataclasses.fields(Embedding) if f.name == "mask_zero")
    return "anywhere" in typing.get_args(hints.get(field.name))


def _write(out_dir: Path, text: str, weights: dict[str, np.ndarray], metadata: dict[str, str], save: Any) -> None:
    """Both files or neither: a new directory is built beside its place and renamed into
    it; into an existing one each file is written atomically, the weights first."""
    from rnnc.artifacts import atomic_write_text

    if out_dir.is_dir():
        save(out_dir / WEIGHTS, weights, metadata)
        atomic_write_text(out_dir / SPEC, text)
        return
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        save(staging / WEIGHTS, weights, metadata)
        atomic_write_text(staging / SPEC, text)
        os.rename(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _schema_line(version: int, out_dir: Path) -> str:
    schema = Path(__file__).resolve().parent.parent / "schema" / f"spec-v{version}.json"
    try:
        where = os.path.relpath(schema, out_dir.resolve())
    except ValueError:  # another drive
        where = str(schema)
    return f"# yaml-language-server: $schema={where}"


def _flow(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10**6).strip()
    return text.removesuffix("...").strip()  # a lone scalar ends its document


def spec_text(converted: Converted, keras: KerasFile, out_dir: Path) -> str:
    """The spec as YAML: one line per layer, input and output, under a header that says
    where it came from and what was chosen or left out."""
    spec = converted.spec
    lines = [_schema_line(int(spec["rnnc"]), out_dir),
             f"# Imported by `rnnc import` from {Path(keras.origin).name} "
             f"(Keras {keras.keras_version or 'unknown'}, {keras.model['class_name']}, {keras.format} format).",
             "# Weights: weights.safetensors beside this file (rnnc compile --weights, rnnc train --weights).",
             "# No data section: give one to train (--set data.train=PATH)."]
    lines += [f"# note: {note}" for note in converted.notes]
    for key, value in spec.items():
        if key == "layers":
            lines.append("layers:")
            lines += [f"  - {_flow(layer)}" for layer in value]
        elif key in ("inputs", "outputs", "input", "training"):
            lines.append(f"{key}:")
            lines += [f"  {_flow({k: v})[1:-1]}" for k, v in value.items()]
        else:
            lines.append(f"{key}: {_flow(value)}")
    return "\n".join(lines) + "\n"
