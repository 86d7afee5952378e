"""The checksum sealed into an exported model's `metadata_props`.

What the metadata says (classes, vocabulary, timesteps, the output's meaning, ...) is
the core's, `rnnc.metadata`, shared with every exporting backend; this module keeps
the onnx-proto part: `sealed`, the last step before a model is written.
"""

from __future__ import annotations

import onnx


def sealed(proto: onnx.ModelProto) -> onnx.ModelProto:
    """`proto` with its checksum (`rnnc.artifacts.model_sha256`) in the metadata, as the
    last step before it is written: `rnnc.artifacts.check_model_checksum` then refuses a
    damaged copy instead of running other weights."""
    from rnnc.artifacts import CHECKSUM_KEY, model_sha256

    kept = [(p.key, p.value) for p in proto.metadata_props if p.key != CHECKSUM_KEY]
    del proto.metadata_props[:]
    for key, value in kept:
        proto.metadata_props.add(key=key, value=value)
    proto.metadata_props.add(key=CHECKSUM_KEY, value=model_sha256(proto.SerializeToString()))
    return proto
