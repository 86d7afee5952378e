"""`rnnc.runtime_decode` on exported generative graphs: greedy decoding gives the ids of a
reference loop written here with torch (the teacher-forced `GraphModule` re-run on the
growing prefix, argmax at its last step), beam search rescored with the step graph, the
prompt fed as one chunk and then one token per call, sampling by seed, and the errors
of models that cannot decode. Random weights, tiny models; the end id's bias raised so
that some answers end early and others run to max_length."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
rnnc_onnx = pytest.importorskip("rnnc_onnx")
pytest.importorskip("rnnc_torch.graph")

import rnnc_torch  # noqa: E402
from export_cases import random_weights  # noqa: E402
from seq2seq_spec import seq2seq_spec  # noqa: E402

from rnnc import ir  # noqa: E402
from rnnc.errors import ArtifactError, UsageError  # noqa: E402
from rnnc.runtime_decode import Decoder, load_decoder  # noqa: E402
from rnnc.sampling import Sampling  # noqa: E402
from rnnc.spec import model_from_text  # noqa: E402

ATTENTION = model_from_text(seq2seq_spec(name='add-small', units=12, dim=6, max_length=7, metrics=False))
STATIC = model_from_text("""
rnnc: 2
name: static-side
inputs:
  question: {shape: [null], dtype: int64}
  profile: {shape: [3]}
  answer_in: {shape: [null], dtype: int64}
layers:
  - {name: q_emb, type: embedding, input: question, vocab_size: 14, dim: 5, mask_zero: true}
  - {name: summary, type: gru, units: 6}
  - {name: a_emb, type: embedding, input: answer_in, vocab_size: 14, dim: 5}
  - {name: rep, type: repeat_vector, input: summary, like: a_emb}
  - {name: rep_profile, type: repeat_vector, input: profile, like: a_emb}
  - {name: both, type: concatenate, input: [a_emb, rep, rep_profile]}
  - {name: decoder, type: gru, units: 7, return_sequences: true}
  - {name: answer, type: dense, units: 14, activation: softmax}
outputs:
  answer: {loss: sparse_categorical_crossentropy, feedback: {input: answer_in, start: 12, end: 13, max_length: 6}}
optimizer: adam
""")
NEXT_TOKEN = model_from_text("""
rnnc: 2
name: chars
inputs:
  text: {shape: [null], dtype: int64}
layers:
  - {name: emb, type: embedding, input: text, vocab_size: 9, dim: 6}
  - {name: rnn, type: gru, units: 10, return_sequences: true}
  - {name: rnn2, type: lstm, units: 8, return_sequences: true}
  - {name: next, type: dense, units: 9, activation: softmax}
outputs:
  next: {loss: sparse_categorical_crossentropy, feedback: {input: text, end: 8}}
optimizer: adam
""")
SEQ2SEQ = {"attention": (ATTENTION, 4), "static": (STATIC, 3)}  # model, seed of its weights


def weights_for(model: ir.Model, end_bias: float, seed: int = 3) -> dict[str, np.ndarray]:
    """Random weights, the output's bias of the end id raised by `end_bias`."""
    weights = random_weights(model, seed)
    out = next(n for n in model.nodes if n.key == model.outputs[0].name or n.name == model.outputs[0].name)
    fb = model.outputs[0].feedback
    assert fb is not None and fb.end is not None
    weights[f"layers.{out.index}.bias"][fb.end] += end_bias
    return weights


def exported(folder: Path, model: ir.Model, weights: dict[str, np.ndarray]) -> Decoder:
    folder.mkdir(parents=True, exist_ok=True)
    rnnc_onnx.export(model, weights, folder / "model.onnx")
    return load_decoder(folder)


def questions(model: ir.Model, rows: int, seed: int = 5) -> dict[str, np.ndarray]:
    """Question ids 1..11, each row its own length (0-padded), and float profiles."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, 12, (rows, 6))
    ids[np.arange(6) >= rng.integers(1, 7, rows)[:, None]] = 0
    out = {"question": ids}
    if any(i.name == "profile" for i in model.inputs):
        out["profile"] = rng.normal(size=(rows, 3)).astype(np.float32)
    return out


def torch_greedy(model: ir.Model, weights: dict[str, np.ndarray], given: dict[str, np.ndarray], prefix: list[int],
                 limit: int) -> list[int]:
    """The reference: the teacher-forced torch module over the whole prefix so far, each
    time again, the argmax of its last step appended, until the end id or `limit`."""
    module = rnnc_torch.build_module(model).eval()
    module.load_ir_state(weights)
    fb = model.outputs[0].feedback
    assert fb is not None
    ids: list[int] = []
    with torch.inference_mode():
        while len(ids) < limit and (not ids or ids[-1] != fb.end):
            fed = np.array([prefix + ids], np.int64)
            inputs = {**{k: torch.from_numpy(v) for k, v in given.items()}, fb.input: torch.from_numpy(fed)}
            lengths = {fb.input: torch.tensor([fed.shape[1]])}
            if "question" in given:
                lengths["question"] = torch.from_numpy(np.maximum((given["question"] != 0).sum(axis=1), 0))
            probs = module(inputs, lengths)[model.outputs[0].name]
            ids.append(int(probs[0, -1].argmax()))
    return ids


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("decode")


@pytest.fixture(scope="module", params=list(SEQ2SEQ))
def seq2seq(request: pytest.FixtureRequest, folder: Path) -> tuple[ir.Model, dict[str, np.ndarray], Decoder]:
    model, seed = SEQ2SEQ[request.param]
    weights = weights_for(model, end_bias=0.5, seed=seed)
    return model, weights, exported(folder / request.param, model, weights)


def test_greedy_decoding_equals_the_torch_reference_loop(seq2seq) -> None:  # type: ignore[no-untyped-def]
    model, weights, decoder = seq2seq
    given = questions(model, 9)
    got = decoder.decode(given)
    assert got.ids.shape == (9, decoder.plan.max_length) and got.ids.dtype == np.int64
    for row in range(9):
        one = {k: v[row : row + 1] for k, v in given.items()}
        one["question"] = one["question"][:, : max(1, int((one["question"] != 0).sum()))]
        want = torch_greedy(model, weights, one, [decoder.plan.start], decoder.plan.max_length)
        assert got.ids[row, : got.lengths[row]].tolist() == want, row
        assert (got.ids[row, got.lengths[row]:] == 0).all()
    ended = got.ids[np.arange(9), got.lengths - 1] == decoder.plan.end
    assert ended.any() and (got.lengths == decoder.plan.max_length).any(), "some answers end early, some do not"


def rescored(decoder: Decoder, given: dict[str, np.ndarray], ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Each row's total log-probability of its ids, by the step graph over them as one chunk."""
    states = decoder.encode(given)
    feed = np.concatenate([np.full((len(ids), 1), decoder.plan.start), ids[:, :-1]], axis=1)
    probs, _ = decoder.step(feed, states)
    picked = np.log(np.take_along_axis(probs, ids[:, :, None], axis=2)[..., 0].astype(np.float64))
    return np.where(np.arange(ids.shape[1]) < lengths[:, None], picked, 0.0).sum(axis=1)


def test_beam_one_is_greedy_and_beam_three_scores_at_least_as_well(seq2seq) -> None:  # type: ignore[no-untyped-def]
    model, _, decoder = seq2seq
    given = questions(model, 24, seed=8)
    greedy = decoder.decode(given)
    one = decoder.decode(given, beam=1)
    assert np.array_equal(one.ids, greedy.ids) and np.array_equal(one.log_probs, greedy.log_probs)
    three = decoder.decode(given, beam=3)
    for decoded in (greedy, three):
        assert np.allclose(rescored(decoder, given, decoded.ids, decoded.lengths), decoded.log_probs, atol=1e-4)
    assert (three.log_probs >= greedy.log_probs - 1e-9).all()
    assert (three.log_probs > greedy.log_probs + 1e-3).any(), "the beam finds a likelier answer somewhere"


def test_batches_decode_as_one(seq2seq) -> None:  # type: ignore[no-untyped-def]
    model, _, decoder = seq2seq
    given = questions(model, 11, seed=9)
    whole = decoder.decode(given, beam=2)
    parts = decoder.decode(given, beam=2, batch_size=4)
    assert np.array_equal(whole.ids, parts.ids) and np.array_equal(whole.lengths, parts.lengths)


def test_sampling_by_seed(seq2seq) -> None:  # type: ignore[no-untyped-def]
    model, _, decoder = seq2seq
    given = questions(model, 16, seed=10)
    a = decoder.decode(given, sample=Sampling(temperature=2.0, seed=1))
    assert np.array_equal(a.ids, decoder.decode(given, sample=Sampling(temperature=2.0, seed=1)).ids)
    assert not np.array_equal(a.ids, decoder.decode(given, sample=Sampling(temperature=2.0, seed=2)).ids)
    top1 = decoder.decode(given, sample=Sampling(top_k=1, seed=3))
    assert np.array_equal(top1.ids, decoder.decode(given).ids)


@pytest.fixture(scope="module")
def next_token(folder: Path) -> tuple[dict[str, np.ndarray], Decoder]:
    weights = weights_for(NEXT_TOKEN, end_bias=0.5, seed=4)
    return weights, exported(folder / "next", NEXT_TOKEN, weights)


def test_next_token_greedy_equals_the_torch_reference_loop(next_token) -> None:  # type: ignore[no-untyped-def]
    weights, decoder = next_token
    assert decoder.next_token and decoder.questions == {}
    for prompt in ([3], [2, 5, 7, 1, 4]):
        got = list(decoder.generate(prompt, 12))
        assert got == torch_greedy(NEXT_TOKEN, weights, {}, prompt, 12)
        assert got == decoder.generate_beam(prompt, 12, beam=1)


def test_the_prompt_runs_as_one_chunk_then_one_token_per_call(next_token, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    _, decoder = next_token
    shapes: list[tuple[int, ...]] = []
    step = decoder.step

    def spy(tokens: np.ndarray, states: dict[str, np.ndarray]):  # type: ignore[no-untyped-def]
        shapes.append(tokens.shape)
        assert set(states) == set(decoder.state_sizes)
        return step(tokens, states)

    monkeypatch.setattr(decoder, "step", spy)
    got = list(decoder.generate([2, 5, 7, 1, 4, 6, 2], 40, sample=Sampling(seed=0)))
    assert shapes == [(1, 7)] + [(1, 1)] * (len(got) - 1)


def test_next_token_sampling_same_seed_same_tokens(next_token) -> None:  # type: ignore[no-untyped-def]
    _, decoder = next_token
    hot = Sampling(temperature=3.0, top_p=0.95, seed=11)
    first = list(decoder.generate([3, 4], 30, sample=hot))
    assert first == list(decoder.generate([3, 4], 30, sample=hot))
    assert first != list(decoder.generate([3, 4], 30, sample=Sampling(temperature=3.0, top_p=0.95, seed=12)))


def test_prompt_ids_and_text_without_a_vocabulary(next_token) -> None:  # type: ignore[no-untyped-def]
    _, decoder = next_token
    assert decoder.prompt_ids("3 4  5") == [3, 4, 5]
    assert decoder.text([3, 0, 4, 8]) == "3 4"
    with pytest.raises(UsageError, match=r"token ids must lie in \[0, 8\] \(vocab_size 9\), got 9"):
        decoder.prompt_ids("3 9")
    with pytest.raises(UsageError, match="a prompt is token ids separated by spaces; got 'hello'"):
        decoder.prompt_ids("hello")
    with pytest.raises(UsageError, match="needs at least one token"):
        list(decoder.generate("", 3))


def test_a_model_without_feedback_cannot_decode(folder: Path) -> None:
    model = model_from_text("""
rnnc: 2
name: plain
inputs: {x: {shape: [null, 2]}}
layers: [{name: y, type: gru, units: 3}]
outputs: {y: {loss: mse}}
optimizer: adam
""")
    (folder / "plain").mkdir()
    rnnc_onnx.export(model, random_weights(model), folder / "plain" / "model.onnx")
    with pytest.raises(ArtifactError, match=r"model.onnx: the model has no feedback output \(spec `feedback:`\), so it has nothing to generate"):
        load_decoder(folder / "plain")


def test_a_missing_step_graph_is_named(folder: Path, seq2seq) -> None:  # type: ignore[no-untyped-def]
    model, weights, _ = seq2seq
    target = folder / "lost" / model.name
    target.mkdir(parents=True)
    rnnc_onnx.export(model, weights, target / "x.onnx")
    (target / "x.step.onnx").unlink()
    with pytest.raises(ArtifactError, match=r"x.onnx: its decoder step graph .*x.step.onnx is missing"):
        load_decoder(target / "x.onnx")
