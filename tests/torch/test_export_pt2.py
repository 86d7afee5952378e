"""`rnnc compile --backend torch`: the model as a `torch.export` program in a `.pt2` file.

The program, loaded with torch alone (`torch.export.load(path).module()`), computes
what the eval-mode `SpecModule` computes (to 1e-5) at other batch sizes and, for a
variable-length model, other sequence lengths than it was traced with, with lengths
down to 1 (and 0); it takes `lengths` exactly when the ONNX graph does; its
`rnnc.json` carries the class names; a refused export writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import rnnc_torch
from rnnc import ir
from rnnc.artifacts import save_weights
from rnnc.cli import main
from rnnc.errors import UsageError
from rnnc.spec import load_model
from rnnc.text import Vocab
from rnnc_torch.export import METADATA_FILE, export, min_steps, program_metadata, read_metadata
from rnnc_torch.cpu.threads import set_to

SPECS = sorted((Path(__file__).parents[2] / "specs").glob("*.yaml"))
VOCAB = 11


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models on a busy two-core machine: one torch thread (as tests/train does)."""
    with set_to(1):
        yield


def inputs(model: ir.Model, batch: int, steps: int, lengths: list[int] | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A batch padded at the end: junk past each length in float input (so a leak would
    show), zeros in token ids (as mask_zero reads them)."""
    if model.input.dtype == "int64":
        first = model.nodes[0].layer
        assert isinstance(first, ir.Embedding)
        x = torch.randint(1, first.vocab_size, (batch, steps))
    else:
        x = torch.randn(batch, steps, model.input.shape[-1])  # type: ignore[arg-type]
    if lengths is None:
        return x, None
    real = torch.arange(steps)[None, :] < torch.tensor(lengths)[:, None]
    x = torch.where(real, x, 0) if x.dim() == 2 else torch.where(real[:, :, None], x, 10 * torch.randn_like(x))
    return x, torch.tensor(lengths)


def batches(model: ir.Model) -> list[tuple[int, int, list[int] | None]]:
    """(batch, steps, lengths): two batch sizes and, for a null time axis, three lengths
    of the time axis (the shortest it takes among them), lengths 0 and 1 included."""
    steps = model.input.shape[0]
    if steps is not None:
        if not model.variable_length:
            return [(4, steps, None), (1, steps, None)]
        return [(4, steps, [steps, 1, steps // 2, 0]), (1, steps, [1])]
    low = min_steps(model)
    return [(4, 9 + low, [9 + low, 1, 5, 0]), (2, low + 2, [low + 2, 1]), (1, low, [low])]


def assert_program_matches(path: Path, module: rnnc_torch.SpecModule) -> None:
    program = torch.export.load(str(path)).module()
    model = module.model
    for batch, steps, lengths in batches(model):
        x, given = inputs(model, batch, steps, lengths)
        args = (x,) if given is None else (x, given)
        with torch.no_grad():
            want = module(*args)
        got = program(*args)
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0, msg=lambda m: f"batch {batch}, {steps} steps: {m}")


def exported(model: ir.Model, tmp_path: Path) -> tuple[Path, rnnc_torch.SpecModule]:
    """`model` with seeded random weights, exported; the eval module with those weights."""
    module = rnnc_torch.build_module(model).eval()
    path = tmp_path / "model.pt2"
    export(model, module.ir_state(), path)
    return path, module


# --- every spec, every layer kind ----------------------------------------------------


@pytest.mark.parametrize("spec", SPECS, ids=[p.stem for p in SPECS])
def test_every_spec_exports_with_its_outputs(spec: Path, tmp_path: Path) -> None:
    path, module = exported(load_model(spec), tmp_path)
    assert_program_matches(path, module)


CASES = [  # (id, input shape, dtype, layers)
    ("embedding_mask_zero_gru", (None,), "int64", [ir.Embedding(VOCAB, 4, mask_zero=True), ir.GRU(5), ir.Dense(3, "softmax")]),
    ("simple_rnn_tanh", (None, 3), "float32", [ir.SimpleRNN(5), ir.Dense(1, "sigmoid")]),
    ("simple_rnn_relu_bidir_seq_dense", (None, 3), "float32",
     [ir.SimpleRNN(4, activation="relu", bidirectional=True, return_sequences=True), ir.Dense(2)]),
    ("lstm_bidir_no_bias", (None, 3), "float32", [ir.LSTM(4, bidirectional=True, use_bias=False)]),
    ("lstm_seq_dense_per_step", (None, 3), "float32", [ir.LSTM(5, return_sequences=True), ir.Dense(3, "softmax")]),
    ("gru_bidir_seq_pool_max", (None, 3), "float32", [ir.GRU(4, bidirectional=True, return_sequences=True), ir.Pool("max")]),
    ("fused_lstm_stack_dropout", (None, 3), "float32",
     [ir.LSTM(4, return_sequences=True), ir.LSTM(4, return_sequences=True, dropout=0.3), ir.LSTM(4, dropout=0.3)]),
    ("conv_same_stride2_pool_mean", (None, 3), "float32", [ir.Conv1D(4, 3, stride=2), ir.Pool("mean")]),
    ("conv_same_k5_stride3_gru", (None, 3), "float32", [ir.Conv1D(4, 5, stride=3, activation="relu"), ir.GRU(3)]),
    ("conv_valid_k3_stride2_lstm_seq", (None, 3), "float32",
     [ir.Conv1D(4, 3, stride=2, padding="valid"), ir.LSTM(3, return_sequences=True)]),
    ("layer_norm_softmax_pool_last", (None, 3), "float32",
     [ir.Dense(4), ir.LayerNorm(), ir.Activation("softmax"), ir.Pool("last"), ir.Dense(2)]),
    ("dropout_at_inference", (None, 3), "float32", [ir.LSTM(4, dropout=0.4), ir.Dropout(0.5), ir.Dense(2, "sigmoid")]),
    ("fixed_gru_bidir", (8, 2), "float32", [ir.GRU(4, bidirectional=True), ir.Dense(1)]),
    ("fixed_conv_same_stride2", (9, 2), "float32", [ir.Conv1D(3, 3, stride=2), ir.SimpleRNN(3, return_sequences=True)]),
    ("fixed_ids_mask_zero", (7,), "int64", [ir.Embedding(VOCAB, 3, mask_zero=True), ir.SimpleRNN(4), ir.Dense(2)]),
]


@pytest.mark.parametrize(("shape", "dtype", "layers"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_every_layer_kind_exports_with_its_outputs(make_model, tmp_path: Path, shape, dtype, layers) -> None:
    path, module = exported(make_model(layers, shape=shape, dtype=dtype), tmp_path)
    assert_program_matches(path, module)


# --- the program's interface ---------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "dtype", "layers", "names"),
    [
        ((None, 3), "float32", [ir.GRU(2)], ["x", "lengths"]),
        ((6, 3), "float32", [ir.GRU(2)], ["x"]),
        ((6,), "int64", [ir.Embedding(VOCAB, 2, mask_zero=True), ir.GRU(2)], ["x", "lengths"]),
    ],
    ids=["variable", "fixed", "fixed_mask_zero"],
)
def test_lengths_is_an_input_exactly_where_the_onnx_graph_has_it(make_model, tmp_path, shape, dtype, layers, names) -> None:
    model = make_model(layers, shape=shape, dtype=dtype)
    path, _ = exported(model, tmp_path)
    signature = torch.export.load(str(path)).graph_signature
    assert list(signature.user_inputs) == names
    assert [i["name"] for i in read_metadata(path)["inputs"]] == names


def test_the_program_refuses_lengths_and_ids_out_of_range(make_model, tmp_path: Path) -> None:
    model = make_model([ir.Embedding(VOCAB, 2, mask_zero=True), ir.GRU(2)], shape=(None,), dtype="int64")
    program = torch.export.load(str(exported(model, tmp_path)[0])).module()
    x = torch.ones(2, 5, dtype=torch.long)
    with pytest.raises(RuntimeError, match=r"lengths must lie in \[0, time\]"):
        program(x, torch.tensor([6, 1]))
    with pytest.raises(RuntimeError, match=rf"token ids must lie in \[0, {VOCAB - 1}\]"):
        program(x * VOCAB, torch.tensor([5, 1]))


def test_a_fixed_length_program_holds_its_timesteps(make_model, tmp_path: Path) -> None:
    program = torch.export.load(str(exported(make_model([ir.GRU(2)], shape=(6, 3)), tmp_path)[0])).module()
    assert program(torch.randn(5, 6, 3)).shape == (5, 2)
    with pytest.raises(AssertionError, match=r"x.size\(\)\[1\] == 6"):
        program(torch.randn(5, 7, 3))


def test_a_strided_convolution_sets_the_fewest_steps_a_batch_may_have(make_model, tmp_path: Path) -> None:
    """ceil(T / 2) must stay >= 2 for torch's tracer; shorter batches are padded."""
    model = make_model([ir.Conv1D(4, 3, stride=2), ir.GRU(2)])
    path, module = exported(model, tmp_path)
    assert (min_steps(model), read_metadata(path)["min_timesteps"]) == (3, 3)
    program = torch.export.load(str(path)).module()
    with pytest.raises(AssertionError, match=r"x.size\(\)\[1\] >= 3"):
        program(torch.randn(2, 2, 3), torch.tensor([2, 1]))
    x = torch.randn(2, 3, 3)
    with torch.no_grad():
        torch.testing.assert_close(program(x, torch.tensor([2, 1])), module(x[:, :2], torch.tensor([2, 1])), atol=1e-5, rtol=0)


# --- metadata, atomic writes, refusals -----------------------------------------------


def test_metadata_holds_what_a_deployment_needs(tmp_path: Path) -> None:
    model = load_model(SPECS[[p.stem for p in SPECS].index("lstm_classifier")])
    path = tmp_path / "m.pt2"
    export(model, None, path, classes=["sine", "square", "saw", "burst"])
    files = {METADATA_FILE: ""}
    torch.export.load(str(path), extra_files=files)  # what a deployment does, torch alone
    meta = json.loads(files[METADATA_FILE])
    assert meta["classes"] == ["sine", "square", "saw", "burst"]
    assert meta["spec_name"] == "lstm-classifier" and meta["spec_hash"] == model.spec_hash
    assert meta["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["batch", 40, 3]}]
    assert meta["output"] == {"name": "y", "dtype": "float32", "shape": ["batch", 4], "meaning": "class probabilities"}
    assert (meta["timesteps"], meta["features"], meta["lengths"]) == (40, 3, "none")


def test_metadata_carries_a_raw_text_vocabulary() -> None:
    vocab = Vocab(tokens=("good", "bad"), tokenizer="word")
    meta = program_metadata(load_model(SPECS[[p.stem for p in SPECS].index("text_lstm")]), None, vocab)
    assert meta["vocab"]["tokens"] == ["good", "bad"] and meta["vocab"]["tokenizer"] == "word"
    assert (meta["lengths"], meta["vocab_size"], meta["timesteps"], meta["min_timesteps"]) == ("ids", 200, None, 1)
    assert "classes" not in meta


def test_without_weights_it_holds_the_onnx_artifacts_initial_weights(tmp_path: Path) -> None:
    from rnnc.runtime import Predictor

    spec = SPECS[[p.stem for p in SPECS].index("gru_stacked_bidir")]
    assert main(["compile", str(spec), "--backend", "torch", "-o", str(tmp_path / "m.pt2")]) == 0
    assert main(["compile", str(spec), "-o", str(tmp_path / "m.onnx")]) == 0
    x = torch.randint(1, 20, (3, 8))
    lengths = torch.tensor([8, 1, 4])
    got = torch.export.load(str(tmp_path / "m.pt2")).module()(x, lengths).numpy()
    np.testing.assert_allclose(got, Predictor(str(tmp_path / "m.onnx")).run(x.numpy(), lengths.numpy()), atol=1e-5)


def test_rnnc_predict_on_a_pt2_says_what_it_is(tmp_path: Path, capsys) -> None:
    spec = SPECS[[p.stem for p in SPECS].index("seed_binary")]
    assert main(["compile", str(spec), "--backend", "torch", "-o", str(tmp_path / "m.pt2")]) == 0
    np.save(tmp_path / "x.npy", np.zeros((2, 10, 1), np.float32))
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "m.pt2"), str(tmp_path / "x.npy")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a torch.export program" in err[0] and "torch.export.load" in err[0], err


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("export.streaming=true", "export.streaming: true is for the ONNX graph"),
        ("export.quantize=int8", "export.quantize: int8 is onnxruntime's quantisation"),
    ],
)
def test_settings_a_pt2_cannot_honour_are_refused_and_nothing_is_written(tmp_path: Path, capsys, override, message) -> None:
    spec, out = SPECS[[p.stem for p in SPECS].index("seed_binary")], tmp_path / "m.pt2"
    out.write_bytes(b"earlier")
    assert main(["compile", str(spec), "--backend", "torch", "--set", override, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert out.read_bytes() == b"earlier" and sorted(p.name for p in tmp_path.iterdir()) == ["m.pt2"]


def test_unknown_options_are_refused(tmp_path: Path) -> None:
    model = load_model(SPECS[0])
    with pytest.raises(UsageError, match="unknown option.*opset; export takes: classes, vocab"):
        rnnc_torch.backend.export(model, None, tmp_path / "m.pt2", opset=18)
    assert not list(tmp_path.iterdir())


def test_compile_from_a_runs_weights_round_trips(tmp_path: Path, capsys) -> None:
    """The CLI path: a weights file with class names in its metadata (as rnnc train
    writes it) compiles to a .pt2 computing the module with those weights."""
    spec = SPECS[[p.stem for p in SPECS].index("text_lstm")]
    model = load_model(spec)
    module = rnnc_torch.build_module(model).eval()
    weights = tmp_path / "weights.safetensors"
    save_weights(weights, module.ir_state(), metadata={"classes": json.dumps(["negative", "positive"])})
    out = tmp_path / "deploy" / "text.pt2"
    assert main(["compile", str(spec), "--backend", "torch", "--weights", str(weights), "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    assert sorted(p.name for p in out.parent.iterdir()) == ["text.pt2"]  # no temporary left behind
    assert read_metadata(out)["classes"] == ["negative", "positive"]
    assert_program_matches(out, module)
