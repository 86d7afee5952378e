"""Damaged weights and ONNX files given to `rnnc compile` and `rnnc predict`.

Each named case (empty, garbage, truncated, a pickle, a bad header, a directory, wrong
shapes, NaN weights, an ONNX file that reads data from outside its folder, an unknown
operator or opset) ends in one line naming the file and exit 2. Then random damage:
bytes flipped and tails cut in a real `weights.safetensors` and `model.onnx`, where
every outcome must be exit 2 with one line naming the file, or exit 0 with exactly the
undamaged result (the weights' checksum leaves compile no other outcome; a model that
predicts otherwise must be refused by `check_model_checksum`), never a traceback (damage that onnxruntime meets only while running
is reported against the input file, with onnxruntime's reason). CI runs 60 of each; `-m slow` runs 2,000 of each (docs/reliability.md).
"""

from __future__ import annotations

import io
import os
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from safetensors.numpy import load, save
from tiny_models import binary_data, write_spec

from rnnc.artifacts import check_model_checksum
from rnnc.cli import main
from rnnc.errors import ArtifactError

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained tiny run: spec, weights, model.onnx and an input file."""
    folder = tmp_path_factory.mktemp("trained")
    spec = write_spec(folder, training={"epochs": 1, "batch_size": 16, "seed": 3})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["train", str(spec), "-o", str(folder / "run"), "--device", "cpu", "--no-progress"]) == 0
    finally:
        torch.set_num_threads(threads)
    np.save(folder / "x.npy", binary_data(n=20)[0])
    return folder


def rnnc(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, list[str]]:
    capsys.readouterr()
    status = main([str(a) for a in argv])
    err = capsys.readouterr().err
    return status, [line for line in err.splitlines() if not line.startswith("rnnc compile: warning:")]


def weights_bytes(trained: Path) -> bytes:
    return (trained / "run" / "weights.safetensors").read_bytes()


def edit_weights(change: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]) -> Callable[[Path], bytes]:
    return lambda trained: save(change(load(weights_bytes(trained))))


def torch_pickle(_: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save({"layers.0.weight_ih": torch.zeros(24, 2)}, buffer)
    return buffer.getvalue()


def first(weights: dict[str, np.ndarray]) -> str:
    return sorted(weights)[0]


def flip_last_bit(trained: Path) -> bytes:
    """One bit of the last tensor's data flipped: a valid file of other weights."""
    data = bytearray(weights_bytes(trained))
    data[-1] ^= 1
    return bytes(data)


def edit_header(old: bytes, new: bytes) -> Callable[[Path], bytes]:
    """The trained file with `old` replaced in its header (same length: still valid)."""
    assert len(old) == len(new)
    return lambda trained: weights_bytes(trained).replace(old, new, 1)


# (id, the file's bytes from the trained run, expected fragment)
BAD_WEIGHTS: list[tuple[str, Callable[[Path], bytes], str]] = [
    ("empty", lambda t: b"", "not a safetensors weights file (Error while deserializing: header too small)"),
    ("garbage", lambda t: random.Random(0).randbytes(3000), "not a safetensors weights file"),
    ("truncated", lambda t: weights_bytes(t)[: len(weights_bytes(t)) // 2], "not a safetensors weights file"),
    ("huge_header_length", lambda t: (2**62).to_bytes(8, "little") + b"{}", "not a safetensors weights file (Error while deserializing: header too large)"),
    ("bad_header_json", lambda t: (10).to_bytes(8, "little") + b"{not json}", "not a safetensors weights file"),
    ("torch_pickle", torch_pickle, "not a safetensors weights file"),
    ("missing_tensor", edit_weights(lambda w: {k: v for k, v in w.items() if k != first(w)}), "weights do not fit the spec: missing layers.0.bias_hh"),
    ("extra_tensor", edit_weights(lambda w: {**w, "layers.9.weight": np.zeros(2, np.float32)}), "weights do not fit the spec: unexpected layers.9.weight"),
    ("wrong_shape", edit_weights(lambda w: {**w, first(w): np.zeros((3, 3), np.float32)}), "layers.0.bias_hh has shape [3, 3], the spec needs [24]"),
    ("nan", edit_weights(lambda w: {k: np.full_like(v, np.nan) for k, v in w.items()}), "layers.0.bias_hh holds NaN or inf"),
    ("float64", edit_weights(lambda w: {**w, first(w): w[first(w)].astype(np.float64)}), "layers.0.bias_hh holds float64 values, not float32"),
    ("complex64", edit_weights(lambda w: {**w, first(w): w[first(w)].astype(np.complex64)}), "layers.0.bias_hh holds complex64 values, not float32"),
    ("bool", edit_weights(lambda w: {**w, first(w): w[first(w)] > 0}), "layers.0.bias_hh holds bool values, not float32"),
    ("int32", edit_weights(lambda w: {**w, first(w): w[first(w)].astype(np.int32)}), "layers.0.bias_hh holds int32 values, not float32"),
    ("flipped_tensor_bit", flip_last_bit, "damaged weights file: its tensors or metadata do not match the checksum it was saved with"),
    ("changed_metadata", edit_header(b'"epoch":"1"', b'"epoch":"7"'), "damaged weights file"),
    ("damaged_checksum_key", edit_header(b'"rnnc_sha256"', b'"rnnc_sha257"'), "damaged weights file"),
]


@pytest.mark.parametrize(("content", "fragment"), [c[1:] for c in BAD_WEIGHTS], ids=[c[0] for c in BAD_WEIGHTS])
def test_bad_weights_to_compile(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                content: Callable[[Path], bytes], fragment: str) -> None:
    weights = tmp_path / "weights.safetensors"
    weights.write_bytes(content(trained))
    status, err = rnnc(capsys, "compile", trained / "tiny.yaml", "--weights", weights, "-o", tmp_path / "out.onnx")
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith(f"{weights}: ") and fragment in err[0], err
    assert not (tmp_path / "out.onnx").exists()


def test_weights_without_a_checksum_are_still_read(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Files from older runs and from other tools carry no checksum: read as they are."""
    weights = tmp_path / "weights.safetensors"
    weights.write_bytes(save(load(weights_bytes(trained))))
    assert b"rnnc_sha256" not in weights.read_bytes()
    status, err = rnnc(capsys, "compile", trained / "tiny.yaml", "--weights", weights, "-o", tmp_path / "out.onnx")
    assert (status, err) == (0, [])


def test_weights_that_are_a_directory_or_missing(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for weights, reason in ((tmp_path, "Is a directory"), (tmp_path / "nope.safetensors", "No such file or directory")):
        status, err = rnnc(capsys, "compile", trained / "tiny.yaml", "--weights", weights, "-o", tmp_path / "out.onnx")
        assert (status, err) == (2, [f"{weights}: cannot read weights: {reason}"])


def onnx_bytes(trained: Path) -> bytes:
    return (trained / "run" / "model.onnx").read_bytes()


def edit_onnx(change: Callable[[onnx.ModelProto], None], keep_checksum: bool = False) -> Callable[[Path], bytes]:
    """The trained model edited by `change`; as a hand-edited file or another tool's, without
    the checksum rnnc writes (`keep_checksum`: with it, which then no longer matches)."""

    def edited(trained: Path) -> bytes:
        proto = onnx.load_from_string(onnx_bytes(trained))
        change(proto)
        if not keep_checksum:
            kept = [entry for entry in proto.metadata_props if entry.key != "rnnc_sha256"]
            del proto.metadata_props[:]
            proto.metadata_props.extend(kept)
        return proto.SerializeToString()

    return edited


def external(location: str) -> Callable[[onnx.ModelProto], None]:
    """Point the first weight at a file instead of holding it."""

    def change(proto: onnx.ModelProto) -> None:
        tensor = proto.graph.initializer[0]
        tensor.ClearField("raw_data")
        tensor.data_location = onnx.TensorProto.EXTERNAL
        entry = tensor.external_data.add()
        entry.key, entry.value = "location", location

    return change


def set_op(proto: onnx.ModelProto) -> None:
    proto.graph.node[0].op_type = "Bogus"


def set_opset(proto: onnx.ModelProto) -> None:
    proto.opset_import[0].version = 999


def set_metadata(proto: onnx.ModelProto) -> None:
    for entry in proto.metadata_props:
        if entry.key == "classes" or entry.key == "timesteps":
            entry.value = "{broken"
    proto.metadata_props.add(key="classes", value="{broken")


def rename_input(proto: onnx.ModelProto) -> None:
    proto.graph.input[0].name = "features"
    for node in proto.graph.node:
        node.input[:] = ["features" if name == "x" else name for name in node.input]


BAD_MODELS: list[tuple[str, Callable[[Path], bytes], str]] = [
    ("empty", lambda t: b"", "not a usable ONNX model"),
    ("garbage", lambda t: random.Random(0).randbytes(3000), "not a usable ONNX model"),
    ("truncated", lambda t: onnx_bytes(t)[: len(onnx_bytes(t)) // 2], "not a usable ONNX model"),
    ("a_weights_file", weights_bytes, "not a usable ONNX model"),
    ("torch_pickle", torch_pickle, "not a usable ONNX model"),
    ("external_data_absolute", edit_onnx(external("/etc/passwd")), "Absolute path not allowed for external data"),
    ("external_data_escaping", edit_onnx(external("../../../../../etc/passwd")), "External data path escapes model directory"),
    ("unknown_operator", edit_onnx(set_op), "No Op registered for Bogus"),
    ("unknown_opset", edit_onnx(set_opset), "not a usable ONNX model"),
    ("broken_metadata", edit_onnx(set_metadata), "not a usable rnnc model: its metadata says timesteps '{broken'"),
    ("not_an_rnnc_model", edit_onnx(rename_input), "not an rnnc model"),
    ("edited_with_its_checksum", edit_onnx(rename_input, keep_checksum=True), "damaged model file: its graph or metadata do not match"),
    ("edited_metadata_with_its_checksum", edit_onnx(set_metadata, keep_checksum=True), "damaged model file"),
]


@pytest.mark.parametrize(("content", "fragment"), [c[1:] for c in BAD_MODELS], ids=[c[0] for c in BAD_MODELS])
def test_bad_model_to_predict(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                              content: Callable[[Path], bytes], fragment: str) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(content(trained))
    status, err = rnnc(capsys, "predict", model, trained / "x.npy", "-o", tmp_path / "y.npy")
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith(f"{model}: ") and fragment in err[0], err
    assert not (tmp_path / "y.npy").exists()


def test_a_model_that_is_a_directory_or_missing(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for model in (tmp_path, tmp_path / "nope.onnx"):
        status, err = rnnc(capsys, "predict", model, trained / "x.npy")
        assert status == 2 and len(err) == 1 and err[0].startswith(f"{model}: "), err


def damaged(good: bytes, chance: random.Random) -> bytes:
    """`good` with 1 to 8 bits flipped, and one time in five its tail cut off."""
    data = bytearray(good)
    for _ in range(chance.choice([1, 1, 2, 8])):
        data[chance.randrange(len(data))] ^= 1 << chance.randrange(8)
    if chance.random() < 0.2:
        data = data[: chance.randrange(len(data))]
    return bytes(data)


def flip_bits(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], cases: int, seed: int) -> dict[str, int]:
    chance = random.Random(seed)
    outcomes: dict[str, int] = {}
    weights, model, out = tmp_path / "weights.safetensors", tmp_path / "model.onnx", tmp_path / "out.onnx"
    assert main(["compile", str(trained / "tiny.yaml"), "--weights", str(trained / "run" / "weights.safetensors"), "-o", str(out)]) == 0
    undamaged = out.read_bytes()
    assert main(["predict", str(trained / "run" / "model.onnx"), str(trained / "x.npy"), "-o", str(tmp_path / "y.npy")]) == 0
    undamaged_predictions = np.load(tmp_path / "y.npy")
    for _ in range(cases):
        weights.write_bytes(damaged(weights_bytes(trained), chance))
        out.unlink(missing_ok=True)
        status, err = rnnc(capsys, "compile", trained / "tiny.yaml", "--weights", weights, "-o", out)
        assert status == 0 or (status == 2 and len(err) == 1 and err[0].startswith(f"{weights}: ")), (status, err)
        # the checksum leaves no harmless-looking damage: what compiles is the undamaged model
        assert status == 2 or out.read_bytes() == undamaged, "damaged weights compiled to another model"
        outcomes[f"compile exit {status}"] = outcomes.get(f"compile exit {status}", 0) + 1
        model.write_bytes(damaged(onnx_bytes(trained), chance))
        status, err = rnnc(capsys, "predict", model, trained / "x.npy", "-o", tmp_path / "y.npy")
        # damage that onnxruntime only meets while running (a weight of the wrong size) is
        # reported against the input: "x.npy: onnxruntime could not run the model on this input: ..."
        named = err[0].startswith((f"{model}: ", f"{trained / 'x.npy'}: onnxruntime could not run the model")) if err else False
        assert status == 0 or (status == 2 and len(err) == 1 and named), (status, err)
        # rnnc.runtime checks the model's checksum: damage that still runs gives the undamaged predictions
        assert status == 2 or np.array_equal(np.load(tmp_path / "y.npy"), undamaged_predictions), "a damaged model predicted"
        refused_by_checksum = status == 2 and "damaged model file" in err[0]
        outcome = f"predict exit {status}" + (" (checksum)" if refused_by_checksum else "")
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def test_a_model_file_carries_a_checksum_of_what_it_computes(trained: Path) -> None:
    data = onnx_bytes(trained)
    check_model_checksum(data, "model.onnx")  # the undamaged file passes
    proto = onnx.load_from_string(data)
    proto.graph.initializer[0].raw_data = bytes(len(proto.graph.initializer[0].raw_data))  # other weights
    with pytest.raises(ArtifactError, match="^m.onnx: damaged model file: its graph or metadata do not match"):
        check_model_checksum(proto.SerializeToString(), "m.onnx")
    del proto.metadata_props[:]  # a model without a checksum (older rnnc, other tools) passes
    check_model_checksum(proto.SerializeToString(), "m.onnx")


def test_random_damage_is_refused_or_harmless(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outcomes = flip_bits(trained, tmp_path, capsys, cases=60, seed=0)
    assert outcomes.get("compile exit 2", 0) > 10 and outcomes.get("predict exit 2", 0) > 10, outcomes


@pytest.mark.slow
def test_random_damage_long_run(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outcomes = flip_bits(trained, tmp_path, capsys, cases=2000, seed=int(os.environ.get("RNNC_DAMAGE_SEED", "1")))
    with capsys.disabled():
        print(f"\nrandom damage: {dict(sorted(outcomes.items()))}")
