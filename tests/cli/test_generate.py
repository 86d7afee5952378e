"""`rnnc generate` and the decoding `rnnc predict` on tiny exported generative graphs
(random weights): streamed text by vocabulary (characters joined, words with spaces),
seeds, greedy, top-k 1, beam, sequence-to-sequence questions from --prompt and from a
.npz, predict's decoded ids (.npz, .csv) beside teacher forcing, and every bad flag or
model as one line with exit status 2."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from seq2seq_spec import seq2seq_spec

from rnnc.cli import main
from rnnc.runtime_decode import load_decoder
from rnnc.sampling import Sampling
from rnnc.spec import model_from_text
from rnnc.text import Vocab

rnnc_onnx = pytest.importorskip("rnnc_onnx")
from rnnc.initial import initial_weights  # noqa: E402

CHARS = Vocab(tuple("abcdefg"), tokenizer="char")  # ids 2..8
WORDS = Vocab(("the", "cat", "sat", "on", "mat", "."), tokenizer="word")  # ids 2..7


def next_token(vocab_size: int, end: int | None = None) -> str:
    feedback = "text" if end is None else f"{{input: text, end: {end}}}"
    return f"""
rnnc: 2
name: gen
inputs:
  text: {{shape: [null], dtype: int64}}
layers:
  - {{name: emb, type: embedding, input: text, vocab_size: {vocab_size}, dim: 5}}
  - {{name: rnn, type: gru, units: 8, return_sequences: true}}
  - {{name: next, type: dense, units: {vocab_size}, activation: softmax}}
outputs:
  next: {{loss: sparse_categorical_crossentropy, feedback: {feedback}}}
optimizer: adam
"""


SEQ2SEQ = seq2seq_spec(name="s2s", cell="gru", units=8, dim=5, metrics=False)


def export(folder: Path, text: str, vocab: Vocab | None = None, *, boost: float = 0.0) -> Path:
    """A run directory with model.onnx (and its decoding graphs), random weights; `boost`
    spreads the output's probabilities (a random model is otherwise near uniform). Padding
    (and, with a vocabulary, the unknown token) is made unlikely, as training makes it."""
    folder.mkdir()
    model = model_from_text(text)
    weights = initial_weights(model, seed=1)
    rng = np.random.default_rng(2)
    for node in model.nodes:
        if node.name in ("next", "answer"):
            bias = rng.normal(0, boost, weights[f"layers.{node.index}.bias"].shape).astype(np.float32)
            bias[: 2 if vocab is not None else 1] = -30.0
            weights[f"layers.{node.index}.bias"] = bias
    rnnc_onnx.export(model, weights, folder / "model.onnx", vocab=vocab)
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gen")
    return {
        "chars": export(root / "chars", next_token(CHARS.size), CHARS),
        "words": export(root / "words", next_token(WORDS.size, end=7), WORDS, boost=1.0),
        "ids": export(root / "ids", next_token(9)),
        "s2s": export(root / "s2s", SEQ2SEQ, boost=1.5),
    }


def generate(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["generate", *map(str, args)]) == 0, capsys.readouterr().err
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out


def refused(capsys: pytest.CaptureFixture[str], command: str, *args: str) -> list[str]:
    assert main([command, *map(str, args)]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and captured.out == ""
    return captured.err.splitlines()


# --- next-token models ----------------------------------------------------------------


def test_same_seed_same_text_other_seed_other_text(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    one = generate(capsys, runs["chars"], "--prompt", "Bad", "-n", 40, "--seed", 1)
    assert one == generate(capsys, runs["chars"], "--prompt", "Bad", "-n", 40, "--seed", 1)
    assert one != generate(capsys, runs["chars"], "--prompt", "Bad", "-n", 40, "--seed", 2)
    assert one.startswith("Bad") and one.endswith("\n") and len(one) == 3 + 40 + 1  # no end id: all 40
    assert set(one[3:-1]) <= set("abcdefg")


def test_the_text_is_the_decoders_ids_detokenised(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    decoder = load_decoder(runs["chars"])
    ids = list(decoder.generate("bad", 25, sample=Sampling(temperature=0.8, top_p=0.9, seed=5)))
    out = generate(capsys, runs["chars"], "--prompt", "bad", "-n", 25, "--temperature", 0.8, "--top-p", 0.9, "--seed", 5)
    assert out == "bad" + "".join(CHARS.tokens[i - 2] for i in ids) + "\n"


def test_greedy_top_k_one_and_beam_one_agree(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    greedy = generate(capsys, runs["chars"], "--prompt", "fed", "-n", 30, "--greedy")
    assert greedy == generate(capsys, runs["chars"], "--prompt", "fed", "-n", 30, "--top-k", 1, "--seed", 9)
    assert greedy == generate(capsys, runs["chars"], "--prompt", "fed", "-n", 30, "--beam", 1)
    beam = generate(capsys, runs["chars"], "--prompt", "fed", "-n", 30, "--beam", 3)
    assert beam.startswith("fed") and len(beam) == 3 + 30 + 1


def test_words_are_written_with_spaces_and_the_end_id_stops(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    decoder = load_decoder(runs["words"])
    ids = list(decoder.generate("The cat", 200, sample=Sampling(seed=3)))
    assert ids[-1] == 7 and 7 not in ids[:-1] and len(ids) < 200, "the end id '.' (7) ends the text"
    out = generate(capsys, runs["words"], "--prompt", "The cat", "-n", 200, "--seed", 3)
    assert out == "The cat " + " ".join(WORDS.tokens[i - 2] for i in ids[:-1]) + "\n"


def test_tokens_are_flushed_as_they_come(runs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []

    class Out(io.StringIO):
        def write(self, s: str) -> int:
            events.append("w")
            return super().write(s)

        def flush(self) -> None:
            events.append("f")

    monkeypatch.setattr("sys.stdout", Out())
    assert main(["generate", str(runs["chars"]), "--prompt", "ab", "-n", "6", "--seed", "0"]) == 0
    assert "".join(events) == "w" + "wf" * 6 + "wf"  # the prompt, each token, the newline


def test_a_model_without_vocabulary_reads_and_writes_ids(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    decoder = load_decoder(runs["ids"])
    ids = list(decoder.generate([3, 4], 8))
    assert generate(capsys, runs["ids"], "--prompt", "3 4", "-n", 8, "--greedy") == "3 4 " + " ".join(map(str, ids)) + "\n"
    assert refused(capsys, "generate", runs["ids"], "--prompt", "3 x") == [
        "--prompt: the model has no vocabulary, so a prompt is token ids separated by spaces; got '3 x'"]
    assert refused(capsys, "generate", runs["ids"], "--prompt", "3 9") == [
        "--prompt: token ids must lie in [0, 8] (vocab_size 9), got 9"]
    assert refused(capsys, "generate", runs["ids"]) == [
        "--prompt: a next-token model needs at least one token to continue (its spec gives no start id)"]


# --- sequence to sequence ---------------------------------------------------------------


def questions(path: Path, rows: int = 7) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(4)
    ids = rng.integers(1, 12, (rows, 5))
    ids[np.arange(5) >= rng.integers(1, 6, rows)[:, None]] = 0
    np.savez(path, question=ids)
    return path, ids


def answers_text(ids: np.ndarray, lengths: np.ndarray) -> list[str]:
    return [" ".join(str(i) for i in row[:n] if i != 13) for row, n in zip(ids, lengths, strict=True)]


def test_a_question_from_the_prompt_and_many_from_a_file(runs: dict[str, Path], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    decoder = load_decoder(runs["s2s"])
    path, ids = questions(tmp_path / "q.npz")
    want = decoder.decode({"question": ids})
    lines = generate(capsys, runs["s2s"], "--input", path).splitlines()
    assert lines == answers_text(want.ids, want.lengths)
    row = ids[0][ids[0] != 0]
    assert generate(capsys, runs["s2s"], "--prompt", " ".join(map(str, row))).splitlines() == lines[:1]
    beam = decoder.decode({"question": ids}, beam=3)
    assert generate(capsys, runs["s2s"], "--input", path, "--beam", 3).splitlines() == answers_text(beam.ids, beam.lengths)


def test_predict_decodes_questions_without_the_feedback_input(runs: dict[str, Path], tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    decoder = load_decoder(runs["s2s"])
    path, ids = questions(tmp_path / "q.npz")
    for beam in (1, 3):
        out = tmp_path / f"decoded{beam}.npz"
        assert main(["predict", str(runs["s2s"]), str(path), "-o", str(out), "--beam", str(beam)]) == 0, capsys.readouterr().err
        want = decoder.decode({"question": ids}, beam=beam)
        with np.load(out) as got:
            assert sorted(got.files) == ["answer", "answer_lengths"]
            assert got["answer"].dtype == np.int64 and got["answer"].shape == (7, 5)
            assert np.array_equal(got["answer"], want.ids) and np.array_equal(got["answer_lengths"], want.lengths)
    assert main(["predict", str(runs["s2s"]), str(path)]) == 0
    want = decoder.decode({"question": ids})
    assert capsys.readouterr().out.splitlines() == ["answer", *answers_text(want.ids, want.lengths)]


def test_predict_with_the_feedback_input_stays_teacher_forced(runs: dict[str, Path], tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "forced.npz"
    np.savez(path, question=np.array([[3, 4, 11, 5]]), answer_in=np.array([[12, 9, 10, 13]]))
    out = tmp_path / "forced_out.npz"
    assert main(["predict", str(runs["s2s"]), str(path), "-o", str(out)]) == 0, capsys.readouterr().err
    with np.load(out) as got:
        assert got["answer"].dtype == np.float32 and got["answer"].shape == (1, 4, 14)
    assert refused(capsys, "predict", runs["s2s"], path, "--beam", "2") == [
        f"--beam is for decoding a sequence-to-sequence model; {path} holds 'answer_in', so the answers are teacher-forced "
        "(leave 'answer_in' out to decode)"]


def test_predict_decoding_refuses_a_bad_question_file(runs: dict[str, Path], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, question=np.array([[3, 40]]))
    assert refused(capsys, "predict", runs["s2s"], path, "-o", tmp_path / "never.npz") == [
        f"{path}: input 'question': token ids must lie in [0, 13] (vocab_size 14), got ids from 3 to 40"]
    assert not (tmp_path / "never.npz").exists()
    np.savez(path, questions=np.array([[3, 4]]))
    lines = refused(capsys, "generate", runs["s2s"], "--input", path)
    assert lines[0].startswith(f"{path}: no array 'question'") and len(lines) == 2


@pytest.mark.parametrize("flags, lines", [
    (["--top-p", "0"], ["--top-p must lie in (0, 1], got 0.0"]),
    (["--top-p", "1.5", "--temperature", "0"], ["--temperature must be a number above 0, got 0.0", "--top-p must lie in (0, 1], got 1.5"]),
    (["--top-k", "0"], ["--top-k must be at least 1, got 0"]),
    (["--beam", "2", "--temperature", "0.5"], ["--beam searches for the likeliest sequence and samples nothing: drop --temperature"]),
    (["--greedy", "--seed", "1"], ["--greedy takes the likeliest token and samples nothing: drop --seed"]),
    (["--greedy", "--beam", "3"], ["--greedy and --beam: choose one (--beam 1 is greedy)"]),
    (["--beam", "0"], ["--beam must be at least 1, got 0"]),
    (["-n", "0"], ["-n must be at least 1, got 0"]),
])
def test_bad_flags(runs: dict[str, Path], capsys: pytest.CaptureFixture[str], flags: list[str], lines: list[str]) -> None:
    assert refused(capsys, "generate", runs["chars"], "--prompt", "ab", *flags) == lines


def test_models_that_cannot_generate_or_questions_missing(runs: dict[str, Path], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    model = model_from_text("""
rnnc: 2
name: plain
inputs: {x: {shape: [null, 2]}}
layers: [{name: y, type: gru, units: 3}]
outputs: {y: {loss: mse}}
optimizer: adam
""")
    rnnc_onnx.export(model, initial_weights(model), plain / "model.onnx")
    assert refused(capsys, "generate", plain, "--prompt", "1") == [
        f"{plain / 'model.onnx'}: the model has no feedback output (spec `feedback:`), so it has nothing to generate; "
        "rnnc predict runs it"]
    np.savez(tmp_path / "x.npz", x=np.zeros((2, 3, 2), np.float32))
    assert refused(capsys, "predict", plain, tmp_path / "x.npz", "--beam", "2") == [
        "--beam is for decoding a sequence-to-sequence model; it has no feedback output"]
    assert refused(capsys, "generate", runs["s2s"]) == [
        f"{runs['s2s'] / 'model.onnx'}: not a next-token model: it answers questions (question); "
        "give one with --prompt or a file of them with --input FILE.npz"]
    assert refused(capsys, "generate", runs["chars"], "--input", tmp_path / "x.npz") == [
        f"--input is for a sequence-to-sequence model; {runs['chars'] / 'model.onnx'} continues a --prompt"]
    assert refused(capsys, "generate", tmp_path / "nowhere") == [f"{tmp_path / 'nowhere'}: no such run directory or model file"]


def test_stats_say_how_fast_after_the_prompt(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", str(runs["chars"]), "--prompt", "abc", "-n", "20", "--seed", "0", "--stats"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out) == 3 + 20 + 1
    assert re.fullmatch(r"20 tokens in [\d.]+ s: the first after [\d.]+ s \(the prompt's chunk\), then [\d,]+ tokens/s\n",
                        captured.err), captured.err


def test_prompt_tokens_outside_the_vocabulary_are_named_on_stderr(runs: dict[str, Path],
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", str(runs["chars"]), "--prompt", "bad Ωz Ω", "-n", "5", "--seed", "1"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("bad Ωz Ω")
    assert captured.err.splitlines() == [  # lowercased, as the vocabulary reads it
        "rnnc generate: warning: the prompt has 3 tokens the model never saw in training (' ', 'ω', 'z'), "
        "each read as the unknown token"]
