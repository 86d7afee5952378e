"""Keras models with random weights, imported by `rnnc import` from .keras and legacy
.h5, compiled to ONNX and run by rnnc.runtime: the same predictions as Keras's to 1e-5
on the same inputs (masked token ids of several lengths where an embedding masks).

The Keras options that rnnc's layers do not declare yet are refused instead, naming
the config key; a deliberately wrong conversion (GRU gates in Keras's order) must fail.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from keras_steps import max_diff, rnnc
from rnnc.layers import ALL_KINDS

TOLERANCE = 1e-5
PARITY = [
    "simple_rnn", "simple_rnn_relu_seq", "lstm", "lstm_stack_dropout", "gru", "gru_no_bias", "bidirectional",
    "embedding_mask", "embedding_bidir_steps", "conv1d_same", "conv1d_valid_stride", "layer_norm_pool", "max_pool",
    "activations", "repeat_vector", "normalization", "concatenate", "add", "average", "multiply", "attention",
    "additive_attention", "two_outputs", "seq2seq_lstm", "seq2seq_gru",
]
# case -> (rnnc kind, setting it needs, the Keras config key refused without it)
OPTIONS = {
    "lstm_hard_sigmoid": ("lstm", "recurrent_activation", "recurrent_activation"),
    "gru_reset_before": ("gru", "reset_after", "reset_after"),
    "recurrent_dropout": ("lstm", "recurrent_dropout", "recurrent_dropout"),
    "merge_sum": ("gru", "merge_mode", "merge_mode"),
    "merge_mul": ("lstm", "merge_mode", "merge_mode"),
    "merge_ave": ("simple_rnn", "merge_mode", "merge_mode"),
}


def declares(kind: str, setting: str) -> bool:
    return any(f.name == setting for f in dataclasses.fields(ALL_KINDS[kind]))


def built(keras_cases: tuple[Path, dict], case: str) -> Path:
    folder, cases = keras_cases
    assert "error" not in cases[case], cases[case]
    return folder


@pytest.mark.parametrize("fmt", ["keras", "h5"])
@pytest.mark.parametrize("case", PARITY)
def test_imported_model_predicts_as_keras(keras_cases, tmp_path, case, fmt):
    folder = built(keras_cases, case)
    assert max_diff(case, folder, folder / f"{case}.{fmt}", tmp_path / "imported") < TOLERANCE


@pytest.mark.parametrize("case", sorted(OPTIONS))
def test_keras_option_maps_when_declared_else_is_refused(keras_cases, tmp_path, case):
    folder = built(keras_cases, case)
    kind, setting, key = OPTIONS[case]
    if declares(kind, setting):
        assert max_diff(case, folder, folder / f"{case}.keras", tmp_path / "imported") < TOLERANCE
    else:
        status, err = rnnc("import", str(folder / f"{case}.keras"), "-o", str(tmp_path / "imported"))
        assert status == 2
        assert f".config.{key}: " in err or f".{key}: " in err, err
        assert not (tmp_path / "imported").exists()


def test_mask_zero_skips_zeros_anywhere_as_keras(keras_cases, tmp_path):
    import typing

    from rnnc.layers import Embedding

    if "anywhere" not in typing.get_args(typing.get_type_hints(Embedding)["mask_zero"]):
        pytest.skip("rnnc's embedding has no mask_zero: anywhere yet; zeros at the start differ from Keras")
    folder = built(keras_cases, "mask_zero_anywhere")
    assert max_diff("mask_zero_anywhere", folder, folder / "mask_zero_anywhere.keras", tmp_path / "imported") < TOLERANCE


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_masking_layer_maps_when_rnnc_has_one_else_is_refused(keras_cases, tmp_path, fmt):
    folder = built(keras_cases, "masking")
    if "masking" in ALL_KINDS:
        assert max_diff("masking", folder, folder / f"masking.{fmt}", tmp_path / "imported") < TOLERANCE
    else:
        status, err = rnnc("import", str(folder / f"masking.{fmt}"), "-o", str(tmp_path / "imported"))
        assert status == 2 and "config.layers[1].class_name: 'Masking': rnnc has no masking layer" in err, err


def test_gru_gates_in_keras_order_fail_the_comparison(keras_cases, tmp_path, monkeypatch):
    """The negative control: the import without the z,r,h -> r,z,n reordering differs."""
    from rnnc.keras_import import layers

    folder = built(keras_cases, "gru")
    monkeypatch.setattr(layers, "_gru_order", lambda array, units: array)
    assert max_diff("gru", folder, folder / "gru.keras", tmp_path / "wrong") > 1e-3


def test_a_decoder_without_the_encoders_state_fails_the_comparison(keras_cases, tmp_path):
    folder = built(keras_cases, "seq2seq_lstm")

    def drop_state(spec: str) -> str:
        assert ", initial_state: encoder.state" in spec
        return spec.replace(", initial_state: encoder.state", "")

    assert max_diff("seq2seq_lstm", folder, folder / "seq2seq_lstm.keras", tmp_path / "wrong", drop_state) > 1e-3


def test_untransposed_conv_kernel_fails_the_comparison(keras_cases, tmp_path, monkeypatch):
    """A second control: conv1d's kernel [k, in, filters] read in the wrong axis order."""
    import numpy as np

    from rnnc.keras_import import layers

    folder = built(keras_cases, "conv1d_same")
    original = layers.conv1d

    def wrong(layer):
        mapped = original(layer)
        mapped.weights["weight"] = np.ascontiguousarray(mapped.weights["weight"][:, :, ::-1])  # kernel flipped in time
        return mapped

    monkeypatch.setitem(layers.MAPPERS, "Conv1D", wrong)
    from rnnc.keras_import import graph

    monkeypatch.setattr(graph, "MAPPERS", layers.MAPPERS)
    assert max_diff("conv1d_same", folder, folder / "conv1d_same.keras", tmp_path / "wrong") > 1e-3
