"""Raw text for next-token graphs (rnnc.data_corpus): a .txt as one token stream cut
into samples, .csv/.jsonl rows one sample each, the vocabulary from the training text
alone, and the spec problems `rnnc check` places (sizes the vocabulary needs, files and
settings a next-token graph cannot read)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rnnc.cli import main
from rnnc.data import load_file, load_training_data
from rnnc.errors import SpecError
from rnnc.spec import load_model
from rnnc.text import Vocab

SPEC = """\
rnnc: 2
name: tiny-chars
inputs:
  text: {shape: [null], dtype: int64}
layers:
  - {name: emb, type: embedding, input: text, vocab_size: 12, dim: 4, mask_zero: true}
  - {name: rnn, type: gru, units: 8, return_sequences: true}
  - {name: next, type: dense, units: 12, activation: softmax}
outputs:
  next: {loss: sparse_categorical_crossentropy, metrics: [accuracy], feedback: text}
optimizer: adam
data:
  train: train.txt
  text: {tokenizer: char, lowercase: false, max_length: 3}
"""


def write(folder: Path, spec: str = SPEC, **files: str) -> Path:
    for name, text in files.items():
        (folder / name.replace("_", ".")).write_text(text, encoding="utf-8")
    (folder / "spec.yaml").write_text(spec)
    return folder / "spec.yaml"


def ids_of(vocab: Vocab, text: str) -> list[int]:
    """The reference encoding: id 2 + rank of each character, 1 when unknown."""
    return [vocab.tokens.index(c) + 2 if c in vocab.tokens else 1 for c in text]


def real(data, i: int) -> tuple[list[int], list[int]]:  # noqa: ANN001 - a GraphDataset
    n = int(data.lengths["text"][i])
    return data.inputs["text"][i, :n].tolist(), data.targets["next"][i, :n].tolist()


def test_a_txt_is_one_stream_cut_into_samples_of_max_length_steps_and_every_token_comes_back(tmp_path: Path) -> None:
    text = "abcab\ncaab"  # 10 tokens: 9 next-token steps, 3 samples of 3
    data = load_training_data(load_model(write(tmp_path, train_txt=text + "\n")))
    vocab = data.vocab
    assert vocab is not None and vocab.tokens == ("a", "b", "c", "\n")  # by count, then alphabetically
    stream = ids_of(vocab, text)
    train = data.train
    assert len(train) == 3 and train.inputs["text"].shape == (3, 3)
    assert train.lengths["text"].tolist() == [3, 3, 3]
    for i in range(3):
        x, y = real(train, i)
        assert x == stream[3 * i : 3 * i + 3] and y == stream[3 * i + 1 : 3 * i + 4]
    rebuilt = [t for i in range(3) for t in real(train, i)[0]] + [real(train, 2)[1][-1]]
    assert rebuilt == stream
    assert not train.masks or bool(train.masks["next"].all())


def test_the_last_short_piece_is_kept_with_its_length(tmp_path: Path) -> None:
    text = "abcdabcdabc"  # 11 tokens, 10 steps: 3 + 3 + 3 + 1
    data = load_training_data(load_model(write(tmp_path, train_txt=text)))
    train, stream = data.train, ids_of(data.vocab, text)
    assert train.lengths["text"].tolist() == [3, 3, 3, 1]
    assert real(train, 3) == ([stream[9]], [stream[10]])
    assert train.inputs["text"][3].tolist() == [stream[9], 0, 0]  # padded at the end
    assert train.masks["next"][3].tolist() == [True, False, False]
    steps = sum(len(real(train, i)[1]) for i in range(len(train)))
    assert steps == len(stream) - 1  # every token but the first is predicted, once


def test_rows_of_a_jsonl_and_a_csv_are_one_sample_each_cut_to_max_length_plus_one(tmp_path: Path) -> None:
    rows = ["ab", "abcabc", "ca b"]
    jsonl = "".join(json.dumps({"text": r, "note": "x"}) + "\n" for r in rows)
    csv = "id,text\n" + "".join(f"{i},{r}\n" for i, r in enumerate(rows))
    for name, body in (("train_jsonl", jsonl), ("train_csv", csv)):
        spec = SPEC.replace("train.txt", name.replace("_", "."))
        data = load_training_data(load_model(write(tmp_path, spec, **{name: body})))
        train = data.train
        assert len(train) == 3, name  # no row lost
        assert train.lengths["text"].tolist() == [1, 3, 3]  # "abcabc" cut to 4 tokens: 3 steps
        for i, row in enumerate(rows):
            tokens = ids_of(data.vocab, row)[:4]
            assert real(train, i) == (tokens[:-1], tokens[1:]), (name, row)


def test_the_vocabulary_comes_from_the_training_text_alone(tmp_path: Path) -> None:
    spec = SPEC.replace("  text: {tokenizer", "  validation: valid.txt\n  test: test.txt\n  text: {tokenizer")
    data = load_training_data(load_model(write(tmp_path, spec, train_txt="aab", valid_txt="abz", test_txt="zzab")))
    assert data.vocab.tokens == ("a", "b")
    assert real(data.validation, 0) == ([2, 3], [3, 1])  # z is unknown (1)
    assert real(data.test, 0) == ([1, 1, 2], [1, 2, 3])
    model = load_model(tmp_path / "spec.yaml")
    again = load_file(model, tmp_path / "test.txt", vocab=data.vocab)  # as a run directory's vocabulary reads it
    assert real(again, 0) == real(data.test, 0)


def test_validation_split_of_a_txt_cuts_at_a_space_and_loses_no_text(tmp_path: Path) -> None:
    spec = SPEC.replace("optimizer: adam", "optimizer: adam\ntraining: {validation_split: 0.2}")
    text = "ab ab ab ab ab ab ab ac"  # the cut (at 18) falls in the last 'ab': it moves to the space after it
    data = load_training_data(load_model(write(tmp_path, spec, train_txt=text)))
    assert "c" not in data.vocab.tokens  # only in the validation part
    train_steps = sum(len(real(data.train, i)[1]) for i in range(len(data.train)))
    valid_steps = sum(len(real(data.validation, i)[1]) for i in range(len(data.validation)))
    assert train_steps + 1 == len("ab ab ab ab ab ab ab")
    assert valid_steps + 1 == len("ac")  # the space at the cut ends the training part


def check_lines(spec: Path, capsys: pytest.CaptureFixture[str], *overrides: str) -> list[str]:
    capsys.readouterr()
    sets = [item for o in overrides for item in ("--set", o)]
    assert main(["check", str(spec), "-q", *sets]) == 2
    return [line.replace(str(spec.parent) + "/", "") for line in capsys.readouterr().err.splitlines()]


def test_check_names_the_vocabulary_size_the_text_needs_at_the_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write(tmp_path, SPEC.replace("12", "5"), train_txt="abc\ndef")  # 7 characters: ids 0 to 8
    assert check_lines(spec, capsys) == [
        "spec.yaml:6:59: layers[0].vocab_size: train.txt: the training text has 7 distinct char tokens, which with padding (0) "
        "and unknown (1) take 9 ids; vocab_size is 5: set vocab_size: 9",
        "spec.yaml:8:38: layers[2].units: train.txt: the training text has 7 distinct char tokens, which with padding (0) "
        "and unknown (1) take 9 ids; output 'next' predicts 5: set units: 9",
    ]
    with pytest.raises(SpecError, match=r"layers\[0\].vocab_size: .*set vocab_size: 9"):
        load_training_data(load_model(spec))  # training says it too (rnnc train places it in the spec)


def test_max_vocab_caps_the_vocabulary_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write(tmp_path, SPEC.replace("max_length: 3", "max_length: 3, max_vocab: 4").replace("12", "5"), train_txt="abcdef")
    lines = check_lines(spec, capsys)
    assert "has 4 distinct char tokens (data.text.max_vocab keeps the 4 most frequent)" in lines[0] and lines[0].endswith("set vocab_size: 6")


@pytest.mark.parametrize(
    ("change", "files", "expected"),
    [
        ((", feedback: text", ""), {"train_txt": "ab"},
         "spec.yaml:13:10: data.train: a graph reads .npz files, one array per input and output (text, next); got train.txt; "
         "raw text (.txt) feeds a next-token graph only (one int64 sequence input that every output feeds back)\n"
         "spec.yaml:14:3: data.text: reads raw text for a v1 chain, or for a next-token graph (one int64 sequence input that "
         "every output feeds back); a graph reads .npz files, one array per input and output (text, next): remove data.text"),
        (("  text: {tokenizer: char, lowercase: false, max_length: 3}\n", ""), {"train_txt": "ab"},
         "spec.yaml:13:10: data.train: a graph reads .npz files, one array per input and output (text, next); got train.txt: "
         "set data.text (tokenizer, max_length) to read raw text"),
        (("train.txt", "train.npz"), {"train_npz": "x"},
         "spec.yaml:13:10: data.train: data.text reads raw text from .txt, .csv, .jsonl files; got train.npz"),
        (("shape: [null]", "shape: [5]"), {"train_txt": "ab"},
         "spec.yaml:4:17: inputs.text.shape: text becomes samples of max_length (3) steps, the last piece of a file and short "
         "rows fewer, so input 'text' takes lengths: give it shape [null], or [3] read by a mask_zero embedding"),
        (("max_length: 3", "max_length: 3, label: y"), {"train_txt": "ab"},
         "spec.yaml:14:60: data.text.label: a next-token model learns from the text alone (the targets are 'text' one step on): "
         "remove data.text.label"),
        (("x", "x"), {"train_txt": " \n"}, "spec.yaml:13:10: data.train: train.txt: holds no text"),
        (("x", "x"), {"train_txt": "a"}, None),  # one token: read at training
    ],
)
def test_check_refuses_what_a_next_token_graph_cannot_read(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          change: tuple[str, str], files: dict[str, str], expected: str | None) -> None:
    spec = write(tmp_path, SPEC.replace(*change), **files)
    if expected is None:
        with pytest.raises(Exception, match="holds 1 token; a next-token model needs at least 2"):
            load_training_data(load_model(spec))
        return
    assert check_lines(spec, capsys) == expected.split("\n")


def test_a_next_token_model_trains_from_a_txt_and_its_model_carries_the_vocabulary(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    text = "the cat sat on the mat\n" * 30
    spec = SPEC.replace("12", "16").replace("max_length: 3", "max_length: 16").replace("optimizer: adam", "optimizer: adam\ntraining: {epochs: 1, batch_size: 8}")
    spec = spec.replace("  text: {tokenizer", "  test: test.txt\n  text: {tokenizer")
    write(tmp_path, spec, train_txt=text, test_txt="the mat sat on the cat\n")
    assert main(["train", str(tmp_path / "spec.yaml"), "-o", str(tmp_path / "run"), "--no-progress", "--threads", "1"]) == 0
    vocab = Vocab.from_json((tmp_path / "run" / "vocab.json").read_text(encoding="utf-8"), "vocab.json")
    assert set(vocab.tokens) == set(text)
    props = {p.key: p.value for p in onnx.load(tmp_path / "run" / "model.onnx").metadata_props}
    assert Vocab.from_json(props["rnnc.vocab"], "model.onnx") == vocab
    # the exported model, teacher-forced on the test text: the same samples, probabilities per step
    test = load_file(load_model(tmp_path / "spec.yaml"), tmp_path / "test.txt", vocab=vocab)
    session = ort.InferenceSession(str(tmp_path / "run" / "model.onnx"), providers=["CPUExecutionProvider"])
    feeds = {"text": test.inputs["text"], "text.lengths": test.lengths["text"]}
    probs = session.run(["next"], {k: v for k, v in feeds.items() if k in {i.name for i in session.get_inputs()}})[0]
    assert probs.shape == (2, 16, 16)
    n = int(test.lengths["text"][0])
    np.testing.assert_allclose(probs[0, :n].sum(axis=-1), 1.0, atol=1e-5)


def test_the_word_tokenizer_cuts_a_stream_into_words_and_marks(tmp_path: Path) -> None:
    spec = SPEC.replace("tokenizer: char, lowercase: false", "tokenizer: word, lowercase: true")
    data = load_training_data(load_model(write(tmp_path, spec, train_txt="The cat sat.\nThe dog sat!")))
    assert data.vocab.tokens == ("sat", "the", "!", ".", "cat", "dog")  # by count, then as strings
    words = ["the", "cat", "sat", ".", "the", "dog", "sat", "!"]
    stream = [data.vocab.tokens.index(w) + 2 for w in words]
    train = data.train
    assert train.lengths["text"].tolist() == [3, 3, 1]
    assert [t for i in range(3) for t in real(train, i)[0]] + [real(train, 2)[1][-1]] == stream
