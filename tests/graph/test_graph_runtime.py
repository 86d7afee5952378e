"""`rnnc.runtime` for v2 graphs: named inputs in, named outputs out, every input checked
(one line per problem), lengths filled by each input's rule, batching, streaming, and
models whose interface does not match their metadata refused at load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx_graphs import INPUTS, OUTPUTS, mixed, reference, sample

from rnnc.errors import ArtifactError, DataError, UsageError
from rnnc.runtime import GraphPredictor, Predictor, load


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("graphs")


@pytest.fixture(scope="module")
def graph(folder: Path) -> GraphPredictor:
    model = load(mixed(folder / "mixed.onnx"))
    assert isinstance(model, GraphPredictor)
    return model


@pytest.fixture(scope="module")
def chain(folder: Path) -> Path:
    rnnc_onnx = pytest.importorskip("rnnc_onnx")
    from rnnc.initial import initial_weights
    from rnnc.spec import model_from_mapping

    model = model_from_mapping({"rnnc": 1, "name": "chain", "input": {"shape": [None, 2]},
                                "layers": [{"type": "gru", "units": 3}, {"type": "dense", "units": 1}], "loss": "mse",
                                "optimizer": "adam"})
    rnnc_onnx.export(model, initial_weights(model), folder / "chain.onnx")
    return folder / "chain.onnx"


def assert_close(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert list(got) == list(want)
    for name in want:
        assert got[name].dtype == np.float32 and got[name].shape == want[name].shape, name
        np.testing.assert_allclose(got[name], want[name], atol=1e-5, err_msg=name)


def test_the_interface_comes_from_the_metadata(graph: GraphPredictor) -> None:
    assert list(graph.inputs) == ["events", "profile", "word", "tokens"]
    assert [(i.dtype, i.shape, i.sequence, i.lengths, i.vocab_size) for i in graph.inputs.values()] == [
        ("float32", (None, 3), True, "full", None), ("float32", (2,), False, "none", None),
        ("int64", (), False, "none", 4), ("int64", (None,), True, "ids", 5)]
    assert [i.layout() for i in graph.inputs.values()] == [
        "[batch, time, 3] float32", "[batch, 2] float32", "[batch] int64 ids", "[batch, time] int64 ids"]
    assert list(graph.outputs) == ["churn", "tags", "level"]
    assert graph.outputs["churn"].classes == ("stay", "leave") and graph.outputs["tags"].per_step
    assert graph.states == {}


@pytest.mark.parametrize(("rows", "batch_size"), [(1, 256), (3, 1), (17, 5), (17, 256)])
def test_predict_equals_the_numpy_reference(graph: GraphPredictor, rows: int, batch_size: int) -> None:
    inputs, lengths = sample(rows, seed=rows)
    assert_close(graph.predict(inputs, lengths, batch_size=batch_size), reference(inputs, lengths))


def test_lengths_left_out_are_filled_by_each_inputs_rule(graph: GraphPredictor) -> None:
    inputs, _ = sample(9)
    outputs, fed = graph.run_with_lengths(inputs)  # events: every step real; tokens: after the last non-zero id
    np.testing.assert_array_equal(fed["events"], np.full(9, 6))
    np.testing.assert_array_equal(fed["tokens"], ((inputs["tokens"] != 0) * np.arange(1, 5)).max(1))
    assert_close(outputs, reference(inputs))
    given = {"tokens": np.full(9, 4)}  # given lengths win over the ids: a zero inside counts
    assert_close(graph.predict(inputs, given), reference(inputs, given))


def test_more_padding_changes_nothing(graph: GraphPredictor) -> None:
    inputs, lengths = sample(6)
    junk = np.random.default_rng(1).normal(size=(6, 5, 3)).astype(np.float32) * 100
    padded = {**inputs, "events": np.concatenate([inputs["events"], junk], axis=1),
              "tokens": np.pad(inputs["tokens"], ((0, 0), (0, 3)))}
    before, after = graph.predict(inputs, lengths), graph.predict(padded, lengths)
    np.testing.assert_allclose(after["churn"], before["churn"], atol=1e-6)
    np.testing.assert_array_equal(after["tags"][:, :4], before["tags"])
    assert not after["tags"][:, 4:].any()  # zero past each sequence's length


def test_lengths_of_zero_are_a_sequence_with_no_real_steps(graph: GraphPredictor) -> None:
    inputs, _ = sample(3)
    lengths = {"events": np.array([0, 2, 6])}
    assert_close(graph.predict(inputs, lengths), reference(inputs, lengths))


def test_memory_mapped_and_listed_inputs_run(graph: GraphPredictor, tmp_path: Path) -> None:
    inputs, lengths = sample(5)
    np.save(tmp_path / "events.npy", inputs["events"])
    mapped = {**inputs, "events": np.load(tmp_path / "events.npy", mmap_mode="r"), "word": inputs["word"].tolist()}
    assert_close(graph.predict(mapped, lengths, batch_size=2), reference(inputs, lengths))


def test_no_rows_give_empty_outputs(graph: GraphPredictor) -> None:
    inputs, _ = sample(0)
    outputs = graph.predict(inputs)
    assert {n: v.shape for n, v in outputs.items()} == {"churn": (0, 1), "tags": (0, 6, 3), "level": (0, 2)}


def bad(inputs: dict, lengths: dict | None = None) -> tuple[dict, dict | None]:
    good, _ = sample(4)
    return {**good, **inputs}, lengths


# (id, what to change, the lines of the error)
BAD_INPUTS = [
    ("missing", lambda: ({k: v for k, v in sample(4)[0].items() if k != "word"}, None),
     ["missing input 'word' ([batch] int64 ids)"]),
    ("unknown", lambda: bad({"profil": np.zeros((4, 2))}),
     ["unknown input 'profil' (did you mean 'profile'?); the model takes: events, profile, word, tokens"]),
    ("ids as floats", lambda: bad({"word": np.zeros(4)}), ["input 'word': the model takes integer token ids, got float64"]),
    ("text", lambda: bad({"profile": np.array([["a", "b"]] * 4)}), ["input 'profile': the model takes numbers (float32), got <U1"]),
    ("rank", lambda: bad({"events": np.zeros((4, 3))}),
     ["input 'events': the model takes [batch, time, 3] float32, got shape [4, 3]"]),
    ("features", lambda: bad({"profile": np.zeros((4, 3))}), ["input 'profile': the model takes [batch, 2] float32, got shape [4, 3]"]),
    ("ids outside", lambda: bad({"tokens": np.array([[1, 5]] * 4)}),
     ["input 'tokens': token ids must lie in [0, 4] (vocab_size 5), got ids from 1 to 5"]),
    ("negative id", lambda: bad({"word": np.array([0, 1, -1, 2])}),
     ["input 'word': token ids must lie in [0, 3] (vocab_size 4), got ids from -1 to 2"]),
    ("NaN", lambda: bad({"profile": np.array([[0, 0], [0, 0], [0, np.nan], [0, 0]])}),
     ["input 'profile': holds NaN, inf or values beyond float32's range (first at profile[2, 1]); NaN and inf are not data"]),
    ("beyond float32", lambda: bad({"profile": np.full((4, 2), 1e39)}),
     ["input 'profile': holds NaN, inf or values beyond float32's range (first at profile[0, 0]); NaN and inf are not data"]),
    ("no steps", lambda: bad({"events": np.zeros((4, 0, 3))}), ["input 'events': no timesteps"]),
    ("rows", lambda: bad({"profile": np.zeros((3, 2))}), ["the inputs hold different numbers of samples: events 4, profile 3, word 4, tokens 4"]),
    ("lengths shape", lambda: bad({}, {"events": np.array([1, 2])}),
     ["lengths of input 'events' must be integers of shape [4], got int64 [2]"]),
    ("lengths a number", lambda: bad({}, {"events": 3}),
     ["lengths of input 'events' must be integers of shape [4], got int64 []"]),
    ("lengths floats", lambda: bad({}, {"events": np.ones(4)}),
     ["lengths of input 'events' must be integers of shape [4], got float64 [4]"]),
    ("lengths too long", lambda: bad({}, {"events": np.array([1, 7, 2, 3])}),
     ["lengths of input 'events' must lie in [0, 6] (its timesteps); row 1 has 7"]),
    ("lengths negative", lambda: bad({}, {"tokens": np.array([1, 1, 1, -1])}),
     ["lengths of input 'tokens' must lie in [0, 4] (its timesteps); row 3 has -1"]),
    ("lengths of a static input", lambda: bad({}, {"profile": np.ones(4, int)}),
     ["lengths given for input 'profile', which takes none (it is not a sequence; inputs with lengths: events, tokens)"]),
    ("lengths of no input", lambda: bad({}, {"event": np.ones(4, int)}),
     ["lengths of an unknown input 'event' (did you mean 'events'?); inputs with lengths: events, tokens"]),
    ("several at once", lambda: ({"events": np.zeros((4, 2)), "profile": np.zeros((4, 1)), "word": np.zeros(4, int),
                                  "tokens": np.zeros((4, 2), int), "extra": 1}, None),
     ["unknown input 'extra'; the model takes: events, profile, word, tokens"]),
    ("several checks", lambda: bad({"events": np.zeros((4, 2)), "profile": np.zeros((4, 1))}),
     ["input 'events': the model takes [batch, time, 3] float32, got shape [4, 2]",
      "input 'profile': the model takes [batch, 2] float32, got shape [4, 1]"]),
    ("an array", lambda: (np.zeros((4, 6, 3)), None),
     ["the model takes named inputs, a dict of arrays keyed events, profile, word, tokens; got ndarray"]),
]


@pytest.mark.parametrize(("make", "lines"), [b[1:] for b in BAD_INPUTS], ids=[b[0] for b in BAD_INPUTS])
def test_a_bad_input_is_one_line_per_problem(graph: GraphPredictor, make, lines: list[str]) -> None:
    inputs, lengths = make()
    for call in (graph.run, graph.predict):
        with pytest.raises(DataError) as caught:
            call(inputs, lengths)
        assert caught.value.lines() == lines


def test_a_bad_value_is_placed_in_the_whole_set_not_its_batch(graph: GraphPredictor) -> None:
    inputs, _ = sample(10)
    inputs["profile"][7, 1] = np.inf
    with pytest.raises(DataError, match=r"first at profile\[7, 1\]"):
        graph.predict(inputs, batch_size=3)


def test_a_v1_model_given_named_inputs_says_so(chain: Path) -> None:
    with pytest.raises(DataError) as caught:
        Predictor(chain).run({"x": np.zeros((1, 3, 2), np.float32)})
    assert str(caught.value) == "the model takes one input x (a spec version 1 chain), got named inputs (x); pass the array"
    assert type(load(chain)) is Predictor


def test_each_kind_of_model_refuses_the_other_predictor(graph: GraphPredictor, chain: Path) -> None:
    with pytest.raises(ArtifactError) as caught:
        Predictor(graph.path)
    assert str(caught.value) == (f"{graph.path}: a graph model (spec version 2) with named inputs (events, events.lengths, "
                                 "profile, tokens, tokens.lengths, word); open it with rnnc.runtime.load or rnnc.runtime.GraphPredictor")
    with pytest.raises(ArtifactError) as caught:
        GraphPredictor(chain)
    assert str(caught.value) == (f"{chain}: a spec version 1 model (one input x, one output y), not a graph; "
                                 "open it with rnnc.runtime.load or rnnc.runtime.Predictor")


def _with(entries: list[dict], index: int, **changes: object) -> list[dict]:
    return [({**e, **changes} if i == index else e) for i, e in enumerate(entries)]


# (id, mixed()'s keywords, the end of the error)
BAD_MODELS = [
    ("no graph entry", {"metadata": {"graph": "{}"}}, "its metadata's graph entry is not {inputs: [...], outputs: [...]}"),
    ("graph not JSON", {"metadata": {"graph": "{inputs"}}, "damaged interface or metadata (JSONDecodeError: "),
    ("an input too many", {"inputs": [*INPUTS, {"name": "extra", "dtype": "float32", "shape": [1], "lengths": "none"}]},
     "its graph takes inputs ['events', 'events.lengths', 'profile', 'tokens', 'tokens.lengths', 'word'], its metadata describes "
     "['events', 'events.lengths', 'extra', 'profile', 'tokens', 'tokens.lengths', 'word']"),
    ("lengths not fed", {"inputs": _with(INPUTS, 0, lengths="none")}, "its graph takes inputs ['events', 'events.lengths'"),
    ("dtype", {"inputs": _with(INPUTS, 1, dtype="int64", shape=[], vocab_size=3)},
     "its input profile is tensor(float) ['batch', 2], its metadata says [batch] int64 ids"),
    ("features", {"inputs": _with(INPUTS, 0, shape=[None, 4])},
     "its input events is tensor(float) ['batch', 'time', 3], its metadata says [batch, time, 4] float32"),
    ("vocabulary", {"inputs": _with(INPUTS, 2, vocab_size=0)},
     "its metadata gives input 'word' (token ids) the vocab_size 0; expected 1 to 2,147,483,648"),
    ("huge timesteps", {"inputs": _with(INPUTS, 0, shape=[10**9, 3])},
     "its metadata describes input 'events' as float32 [1000000000, 3] with lengths 'full'"),
    ("outputs renamed", {"outputs": _with(OUTPUTS, 2, name="levels")},
     "its graph gives outputs ['churn', 'tags', 'level'], its metadata describes ['churn', 'tags', 'levels']"),
    ("classes", {"outputs": _with(OUTPUTS, 0, classes=["a", "b", "c"])},
     "its metadata names 3 classes for output 'churn', which has 1 units"),
    ("output shape", {"outputs": _with(OUTPUTS, 2, shape=[2])},
     "its metadata gives output 'level' the shape [2]; expected [batch, units] or [batch, time, units]"),
    ("output lengths", {"outputs": _with(OUTPUTS, 1, lengths="profile")},
     "its metadata says output 'tags' follows the lengths of 'profile', an input without lengths"),
]


@pytest.mark.parametrize(("keywords", "message"), [b[1:] for b in BAD_MODELS], ids=[b[0] for b in BAD_MODELS])
def test_a_model_whose_interface_does_not_fit_is_refused(tmp_path: Path, keywords: dict, message: str) -> None:
    path = mixed(tmp_path / "bad.onnx", **keywords)
    with pytest.raises(ArtifactError) as caught:
        load(path)
    assert str(caught.value).startswith(f"{path}: not a usable rnnc model: {message}")
    assert "\n" not in str(caught.value)


def test_an_output_of_another_shape_than_declared_is_refused_when_it_runs(tmp_path: Path) -> None:
    model = load(mixed(tmp_path / "m.onnx", outputs=_with(OUTPUTS, 2, shape=["batch", 5])))
    with pytest.raises(ArtifactError, match=r"for a batch of 4 samples it gave level of shape \[4, 2\], declared \['batch', 5\]$"):
        model.predict(sample(4)[0])


def test_chunks_of_a_stream_add_up_to_the_whole(folder: Path) -> None:
    model = load(mixed(folder / "streaming.onnx", streaming=True))
    assert model.states == {"state.0.h": 3}
    inputs, lengths = sample(5, steps=7)
    whole = model.predict(inputs, lengths)
    assert_close(whole, reference(inputs, lengths))
    stream = model.stream()
    for begin in range(0, 7, 3):
        chunk = {**inputs, "events": inputs["events"][:, begin : begin + 3]}
        real = {"events": np.clip(lengths["events"] - begin, 0, chunk["events"].shape[1])}
        last = stream.step(chunk, real)
    np.testing.assert_allclose(last["churn"], whole["churn"], atol=1e-6)
    with pytest.raises(DataError, match="^a stream keeps one batch: this chunk has 2 sequences, the stream 5$"):
        stream.step({k: v[:2] for k, v in inputs.items()})
    stream.reset()
    np.testing.assert_allclose(stream.step(inputs, lengths)["churn"], whole["churn"], atol=1e-6)


def test_a_model_without_state_does_not_stream(graph: GraphPredictor) -> None:
    with pytest.raises(UsageError, match="exported without streaming state"):
        graph.stream()


def test_the_graph_runtime_imports_neither_torch_nor_onnx(graph: GraphPredictor) -> None:
    code = (
        "import sys, numpy as np\nfrom rnnc.runtime import load\n"
        f"m = load({graph.path!r})\n"
        "out = m.predict({'events': np.zeros((2, 3, 3), np.float32), 'profile': np.zeros((2, 2), np.float32), "
        "'word': np.zeros(2, np.int64), 'tokens': np.ones((2, 2), np.int64)})\n"
        "assert sorted(out) == ['churn', 'level', 'tags'], out\n"
        "bad = {'torch', 'onnx'} & set(sys.modules); assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_metadata_entries_are_the_cores_graph_interface() -> None:
    """The hand-built models describe themselves as rnnc.metadata.graph_interface does."""
    from rnnc.metadata import graph_interface
    from rnnc.spec import model_from_mapping

    model = model_from_mapping({
        "rnnc": 2, "name": "mixed",
        "inputs": {"events": {"shape": [None, 3]}, "profile": {"shape": [2]}, "word": {"shape": [], "dtype": "int64"},
                   "tokens": {"shape": [None], "dtype": "int64"}},
        "layers": [{"name": "pooled", "type": "gru", "units": 1, "input": "events"},
                   {"name": "w", "type": "embedding", "input": "word", "vocab_size": 4, "dim": 1},
                   {"name": "churn", "type": "add", "input": ["pooled", "w"]},
                   {"name": "t", "type": "embedding", "input": "tokens", "vocab_size": 5, "dim": 3, "mask_zero": True},
                   {"name": "tags", "type": "dense", "units": 3, "activation": "softmax"},
                   {"name": "level", "type": "dense", "units": 2, "input": "profile"}],
        "outputs": {"churn": {"loss": "mse"}, "tags": {"loss": "sparse_categorical_crossentropy"}, "level": {"loss": "mse"}},
        "optimizer": "adam",
    })
    interface = json.loads(json.dumps(graph_interface(model)))
    assert interface["inputs"] == INPUTS
    assert [{k: v for k, v in o.items() if k not in ("loss", "meaning")} for o in interface["outputs"]] == [
        {k: v for k, v in o.items() if k not in ("loss", "meaning", "classes")} for o in OUTPUTS]


STREAMING = {
    "rnnc": 2, "name": "s", "inputs": {"events": {"shape": [None, 3]}, "profile": {"shape": [2]}},
    "layers": [{"name": "enc", "type": "gru", "units": 4, "input": "events", "return_sequences": True},
               {"name": "steps", "type": "dense", "units": 2},
               {"name": "last", "type": "lstm", "units": 3, "input": "enc"},
               {"name": "both", "type": "concatenate", "input": ["last", "profile"]},
               {"name": "score", "type": "dense", "units": 1, "activation": "sigmoid"}],
    "outputs": {"score": {"loss": "binary_crossentropy"}, "steps": {"loss": "mse"}},
    "optimizer": "adam", "export": {"streaming": True},
}


def test_a_streaming_graph_of_the_exporter_streams_as_it_runs_whole(folder: Path) -> None:
    rnnc_onnx = pytest.importorskip("rnnc_onnx")
    from rnnc.initial import initial_weights
    from rnnc.spec import model_from_mapping

    spec = model_from_mapping(STREAMING)
    rnnc_onnx.export(spec, initial_weights(spec, seed=3), folder / "stream.onnx")
    model = load(folder / "stream.onnx")
    assert model.states == {"state.0.h": 4, "state.2.h": 3, "state.2.c": 3}
    rng = np.random.default_rng(4)
    inputs = {"events": rng.normal(size=(3, 7, 3)).astype(np.float32), "profile": rng.normal(size=(3, 2)).astype(np.float32)}
    lengths = {"events": np.array([7, 3, 5])}
    whole = model.predict(inputs, lengths)
    for size in (1, 3):
        stream, steps = model.stream(), []
        for begin in range(0, 7, size):
            chunk = {**inputs, "events": inputs["events"][:, begin : begin + size]}
            out = stream.step(chunk, {"events": np.clip(lengths["events"] - begin, 0, chunk["events"].shape[1])})
            steps.append(out["steps"])
        np.testing.assert_allclose(out["score"], whole["score"], atol=1e-5)
        np.testing.assert_allclose(np.concatenate(steps, axis=1), whole["steps"], atol=1e-5)
