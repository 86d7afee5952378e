"""Reads a Keras model file without Keras: its architecture (config), compile settings
and every layer's weights, for `rnnc import`.

Two formats: Keras 3's `.keras` (a zip of `config.json` and `model.weights.h5`, whose
groups are `layers/<key>/[cell/|forward_layer/|backward_layer/...]vars/<i>`, each
layer's group naming the layer in its `vars` attribute `name`), and the legacy HDF5
`.h5` of Keras 2 and 3 (attributes `model_config` and `training_config`, weights in
`model_weights/<layer>/...` listed by each group's `weight_names`). A layer's weights
come out in Keras's own order (`layer.weights`: kernel, recurrent kernel, bias; a
Bidirectional's forward layer before its backward one). h5py is the only dependency,
imported here; without it the user is told which extra to install.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rnnc.errors import ArtifactError

H5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_SUBLAYER_ORDER = {"vars": 0, "cell": 1, "forward_layer": 2, "layer": 2, "backward_layer": 3}


@dataclass(frozen=True)
class KerasFile:
    """What a Keras model file holds, as plain data."""

    origin: str  # the file's name, for messages
    format: str  # "keras" (the zip) or "h5" (legacy HDF5)
    model: dict[str, Any]  # {"class_name": "Sequential" | "Functional" | "Model", "config": {...}}
    compile: dict[str, Any] | None  # {"loss": ..., "optimizer": ..., "metrics": ...}
    weights: dict[str, list[np.ndarray]]  # layer name -> its arrays, in Keras's order
    keras_version: str


def read(path: str | Path) -> KerasFile:
    """The architecture, compile settings and weights of a `.keras` or `.h5` file."""
    path = Path(path)
    try:
        head = path.read_bytes()[:8] if path.is_file() else b""
    except OSError as err:
        raise ArtifactError(f"{path}: cannot read: {err.strerror}") from None
    if not path.is_file():
        raise ArtifactError(f"{path}: no such file (expected a Keras model, .keras or .h5)")
    if head.startswith(b"PK"):
        return _read_zip(path)
    if head == H5_SIGNATURE:
        return _read_h5(path)
    raise ArtifactError(f"{path}: not a Keras model file (neither a .keras zip nor HDF5 .h5)")


def _h5py() -> Any:
    try:
        import h5py
    except ImportError:
        raise ArtifactError("rnnc import reads Keras files with h5py: pip install 'rnnc[keras]'") from None
    return h5py


def _read_zip(path: Path) -> KerasFile:
    h5py = _h5py()
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "config.json" not in names:
                raise ArtifactError(f"{path}: a zip without config.json is not a .keras model")
            config = json.loads(archive.read("config.json"))
            metadata = json.loads(archive.read("metadata.json")) if "metadata.json" in names else {}
            if "model.weights.h5" not in names:
                raise ArtifactError(f"{path}: no model.weights.h5 in the archive (sharded or npz weights are not read)")
            blob = archive.read("model.weights.h5")
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ArtifactError(f"{path}: not a readable .keras file ({err})") from None
    weights: dict[str, list[np.ndarray]] = {}
    try:
        with h5py.File(io.BytesIO(blob), "r") as store:
            layers = store.get("layers")
            for key in (layers.keys() if layers is not None else ()):
                group = layers[key]
                name = _attr(group["vars"].attrs.get("name")) if "vars" in group else key
                weights[name] = _arrays(group)
    except OSError as err:
        raise ArtifactError(f"{path}: model.weights.h5 is not readable HDF5 ({err})") from None
    return KerasFile(str(path), "keras", _model_config(config, path), config.get("compile_config"), weights,
                     str(metadata.get("keras_version", "")))


def _arrays(group: Any) -> list[np.ndarray]:
    """Every array under a `.keras` layer group, in Keras's order: `vars/0..n` by
    number, the layer's own before a cell's, a forward layer's before a backward one's."""
    out: list[np.ndarray] = []
    keys = sorted(group.keys(), key=lambda k: (_SUBLAYER_ORDER.get(k, 4), int(k) if k.isdigit() else 0, k))
    for key in keys:
        item = group[key]
        if hasattr(item, "shape"):
            out.append(np.asarray(item[()]))
        else:
            out += _arrays(item)
    return out


def _read_h5(path: Path) -> KerasFile:
    h5py = _h5py()
    try:
        with h5py.File(path, "r") as store:
            raw = store.attrs.get("model_config")
            if raw is None:
                raise ArtifactError(f"{path}: an HDF5 file without model_config (a weights-only file?) is not a Keras model")
            config = json.loads(_attr(raw))
            training = store.attrs.get("training_config")
            compile_config = json.loads(_attr(training)) if training is not None else None
            version = _attr(store.attrs.get("keras_version", ""))
            root = store["model_weights"] if "model_weights" in store else store
            weights = {}
            for name in (_attr(n) for n in root.attrs.get("layer_names", [])):
                group = root[name]
                weights[name] = [np.asarray(group[_attr(w)][()]) for w in group.attrs.get("weight_names", [])]
    except (OSError, KeyError, json.JSONDecodeError) as err:
        raise ArtifactError(f"{path}: not a readable Keras .h5 file ({err})") from None
    return KerasFile(str(path), "h5", _model_config(config, path), _compile_from_training(compile_config), weights,
                     version)


def _compile_from_training(training: dict[str, Any] | None) -> dict[str, Any] | None:
    """The legacy `training_config` as `.keras`'s compile_config (loss, optimizer, metrics)."""
    if not training:
        return None
    metrics = training.get("metrics")
    if isinstance(metrics, list) and metrics and isinstance(metrics[0], list):
        metrics = metrics[0]  # Keras 2 nests one list per output
    return {"loss": training.get("loss"), "optimizer": training.get("optimizer_config"), "metrics": metrics}


def _model_config(config: Any, path: Path) -> dict[str, Any]:
    if not isinstance(config, dict) or "class_name" not in config or not isinstance(config.get("config"), dict):
        raise ArtifactError(f"{path}: the model config is not a Keras model (no class_name and config)")
    return config


def _attr(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
