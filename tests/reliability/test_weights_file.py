"""The weights file: plain safetensors, the same bytes for the same weights, and a
checksum (`rnnc_sha256` in its metadata) that turns any damage into a refusal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load, save

from rnnc.artifacts import CHECKSUM_KEY, load_weights, load_weights_metadata, save_weights, weights_sha256
from rnnc.errors import ArtifactError

WEIGHTS = {"layers.1.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "layers.0.bias": np.ones(3, np.float32),
           "layers.2.empty": np.zeros((0, 2), np.float32)}
METADATA = {"name": "tiny", "epoch": "3", "classes": '["café", "thé"]', "rnnc_spec_hash": "ab" * 32}


def test_safetensors_reads_what_rnnc_writes(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_weights(path, WEIGHTS, METADATA)
    with safe_open(str(path), framework="numpy") as handle:
        assert handle.metadata() == {**METADATA, CHECKSUM_KEY: weights_sha256(WEIGHTS, METADATA)}
        assert sorted(handle.keys()) == sorted(WEIGHTS)
    for name, value in load(path.read_bytes()).items():
        np.testing.assert_array_equal(value, WEIGHTS[name])
    assert load_weights_metadata(path)[CHECKSUM_KEY] == weights_sha256(WEIGHTS, METADATA)


def test_the_same_weights_give_the_same_bytes_whatever_the_key_order(tmp_path: Path) -> None:
    # safetensors.numpy.save writes its metadata in a different order nearly every time
    files = []
    for i in range(8):
        rotation = list(METADATA.items())[i % 4 :] + list(METADATA.items())[: i % 4]
        save_weights(tmp_path / f"{i}.safetensors", dict(reversed(WEIGHTS.items())) if i % 2 else WEIGHTS, dict(rotation))
        files.append((tmp_path / f"{i}.safetensors").read_bytes())
    assert len(set(files)) == 1


@pytest.mark.parametrize("offset", [-1, -20, -36])  # the 36 tensor bytes: the last, one in the middle, the first
def test_every_flipped_bit_in_the_tensors_is_refused(tmp_path: Path, offset: int) -> None:
    path = tmp_path / "w.safetensors"
    save_weights(path, WEIGHTS, METADATA)
    data = bytearray(path.read_bytes())
    for bit in range(8):
        data[offset] ^= 1 << bit
        path.write_bytes(bytes(data))
        with pytest.raises(ArtifactError, match="damaged weights file: its tensors or metadata do not match"):
            load_weights(path)
        data[offset] ^= 1 << bit
    path.write_bytes(bytes(data))
    assert load_weights(path).keys() == WEIGHTS.keys()  # the undamaged bytes still load


def test_a_file_without_a_checksum_is_read_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes(save(WEIGHTS, metadata={"epoch": "1"}))
    assert load_weights_metadata(path) == {"epoch": "1"}
    assert load_weights(path).keys() == WEIGHTS.keys()
