"""`rnnc compile` from a run's weights gives the model the run wrote: its class names
(from the weights' metadata) and its vocabulary (the `vocab.json` beside them, or
`--vocab`), so the recompiled model.onnx reads raw text as the run's does. Bad
vocabularies and class metadata exit 2 with one line and write nothing."""

from __future__ import annotations

import contextlib
import io
import json
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest

from rnnc.artifacts import load_weights, save_weights
from rnnc.cli import main
from rnnc.runtime import Predictor
from rnnc.text import Vocab

torch = pytest.importorskip("torch")
from rnnc_torch.cpu.threads import set_to  # noqa: E402  (after the skip when torch is missing)

SPEC = """\
rnnc: 1
name: tiny-topics
input: {shape: [null], dtype: int64}
layers:
  - {type: embedding, vocab_size: 40, dim: 8, mask_zero: true}
  - {type: gru, units: 8}
  - {type: dense, units: 3, activation: softmax}
loss: sparse_categorical_crossentropy
optimizer: {type: adam, lr: 0.01}
training: {epochs: 1, batch_size: 16, seed: 1}
data:
  train: train.jsonl
  text: {tokenizer: word, max_vocab: 30, max_length: 12}
"""

NOT_TEXT = """\
rnnc: 1
name: not-text
input: {shape: [null, 2]}
layers:
  - {type: gru, units: 4}
  - {type: dense, units: 1}
loss: mse
optimizer: adam
"""

TEXTS = ["The match was won late", "Rain and wind tomorrow", "Stocks fell, then rose!", "an unseen phrase entirely"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models on a busy two-core machine: one torch thread (as tests/train does)."""
    with set_to(1):
        torch.manual_seed(0)
        yield


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch run on three named topics: spec.yaml beside its run directory `run/`."""
    folder = tmp_path_factory.mktemp("topics")
    rng = random.Random(0)
    words = {
        "sport": "match goal team won lost score".split(),
        "weather": "rain sun wind storm cold warm".split(),
        "money": "stocks bank price fell rose market".split(),
    }
    filler = "the a was and then it very late tomorrow".split()
    rows = []
    for _ in range(96):
        topic = rng.choice(sorted(words))
        tokens = rng.choices(filler, k=3) + rng.choices(words[topic], k=2)
        rng.shuffle(tokens)
        rows.append({"text": " ".join(tokens), "label": topic})
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "spec.yaml").write_text(SPEC)
    (folder / "not_text.yaml").write_text(NOT_TEXT)
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["train", str(folder / "spec.yaml"), "-o", str(folder / "run"), "--no-progress"]) == 0
    return folder


def compile_run(run: Path, out: Path, *extra: str) -> int:
    args = ["compile", str(run / "spec.yaml"), "--weights", str(run / "run" / "weights.safetensors"), "-o", str(out)]
    with contextlib.redirect_stdout(io.StringIO()):
        return main([*args, *extra])


def metadata(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_compiling_a_runs_weights_gives_the_runs_model(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "again.onnx"
    assert compile_run(run, out) == 0
    assert capsys.readouterr().err.splitlines() == [f"rnnc compile: using the vocabulary in {run / 'run' / 'vocab.json'}"]
    trained, again = metadata(run / "run" / "model.onnx"), metadata(out)
    assert json.loads(again["classes"]) == json.loads(trained["classes"]) == ["money", "sport", "weather"]
    assert again["rnnc.vocab"] == trained["rnnc.vocab"]
    assert again == trained
    want = Predictor(run / "run" / "model.onnx").predict_texts(TEXTS)
    np.testing.assert_allclose(Predictor(out).predict_texts(TEXTS), want, atol=1e-6)


def test_an_int8_recompile_still_reads_raw_text(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "int8.onnx"
    assert compile_run(run, out, "--set", "export.quantize=int8") == 0
    quantized = Predictor(out)
    assert quantized.classes == ["money", "sport", "weather"] and quantized.vocab is not None
    y = quantized.predict_texts(TEXTS)
    np.testing.assert_allclose(y, Predictor(run / "run" / "model.onnx").predict_texts(TEXTS), atol=0.05)
    assert metadata(out)["quantize"] == "int8"


def test_explicit_classes_win_over_the_weights_with_a_warning(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "renamed.onnx"
    assert compile_run(run, out, "--classes", "a, b, c") == 0
    assert Predictor(out).classes == ["a", "b", "c"]
    assert "warning: --classes a,b,c replaces the class names the weights were trained with (money,sport,weather" in capsys.readouterr().err
    assert compile_run(run, out, "--classes", "money,sport,weather") == 0  # the same names: nothing to warn about
    assert "warning" not in capsys.readouterr().err


def test_an_explicit_vocab_where_the_weights_have_none_beside_them(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(run / "run" / "weights.safetensors", tmp_path / "w.safetensors")
    base = ["compile", str(run / "spec.yaml"), "--weights", str(tmp_path / "w.safetensors")]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([*base, "--vocab", str(run / "run" / "vocab.json"), "-o", str(tmp_path / "v.onnx")]) == 0
    assert capsys.readouterr().err == ""
    vocab = Vocab.from_json((run / "run" / "vocab.json").read_text(), "vocab.json")
    assert Predictor(tmp_path / "v.onnx").vocab == vocab

    # no vocabulary anywhere: the graph takes token ids, and a warning says raw text will not do
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([*base, "-o", str(tmp_path / "ids.onnx")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "reads raw text (data.text) but no vocabulary was given" in err[0] and "--vocab" in err[0]
    ids_only = Predictor(tmp_path / "ids.onnx")
    assert ids_only.vocab is None and ids_only.classes == ["money", "sport", "weather"]
    ids, lengths = vocab.encode(TEXTS)
    np.testing.assert_allclose(ids_only.run(ids, lengths), Predictor(tmp_path / "v.onnx").predict_texts(TEXTS), atol=1e-6)


WARNINGS = [
    ("spec tokenizes otherwise", ["--set", "data.text.tokenizer=char"],
     "vocab.json tokenizes as word (lowercase true), the spec's data.text as char (lowercase true); the vocabulary's rule is used"),
    ("loss without classes", ["--set", "loss=mse"], "weights.safetensors are not recorded: loss mse has no classes"),
]


@pytest.mark.parametrize(("what", "extra", "message"), WARNINGS, ids=[w[0] for w in WARNINGS])
def test_what_the_spec_no_longer_fits_is_said_and_the_model_written(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], what: str, extra: list[str], message: str
) -> None:
    assert compile_run(run, tmp_path / "m.onnx", *extra) == 0
    assert message in capsys.readouterr().err
    assert Predictor(tmp_path / "m.onnx").predict_texts(TEXTS).shape[0] == len(TEXTS)


def _bad_vocab(folder: Path, text: str) -> Path:
    (folder / "vocab.json").write_text(text)
    return folder / "vocab.json"


def _beside_weights(folder: Path, run: Path, text: str) -> list[str]:
    shutil.copy(run / "run" / "weights.safetensors", folder / "weights.safetensors")
    _bad_vocab(folder, text)
    return ["--weights", str(folder / "weights.safetensors")]


def _bad_classes(folder: Path, run: Path) -> list[str]:
    weights = load_weights(run / "run" / "weights.safetensors")
    save_weights(folder / "w.safetensors", weights, {"classes": "money sport weather"})
    return ["--weights", str(folder / "w.safetensors")]


TOO_BIG = Vocab(tuple(f"t{i}" for i in range(39)), "word", True, 12).to_json()  # 41 ids, the embedding has 40
BAD_CASES = [
    ("vocab for a spec without text", "not_text.yaml", lambda f, r: ["--vocab", str(r / "run" / "vocab.json")],
     "not_text.yaml does not read raw text (no data.text), so it takes no vocabulary"),
    ("vocab larger than the embedding", "spec.yaml", lambda f, r: ["--vocab", str(_bad_vocab(f, TOO_BIG))],
     "vocab.json: the vocabulary's 41 ids (padding, unknown and 39 tokens) do not fit the embedding's vocab_size 40"),
    ("vocab not json", "spec.yaml", lambda f, r: ["--vocab", str(_bad_vocab(f, '{"tokens": [}'))],
     "vocab.json: the vocabulary is not valid JSON"),
    ("vocab of the wrong form", "spec.yaml", lambda f, r: ["--vocab", str(_bad_vocab(f, '{"tokens": 3}'))],
     "vocab.json: not an rnnc vocabulary"),
    ("vocab missing", "spec.yaml", lambda f, r: ["--vocab", str(f / "nope.json")], "nope.json: cannot read the vocabulary"),
    ("corrupt vocab beside the weights", "spec.yaml", lambda f, r: _beside_weights(f, r, "\x00garbage"),
     "vocab.json: the vocabulary is not valid JSON"),
    ("class metadata not a list", "spec.yaml", _bad_classes, "w.safetensors: the classes in its metadata are not a JSON list"),
]


@pytest.mark.parametrize(("what", "spec", "extra", "message"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_vocabularies_and_classes_exit_2_with_one_line(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], what: str, spec: str, extra, message: str
) -> None:
    out = tmp_path / "m.onnx"
    args = extra(tmp_path, run)
    assert main(["compile", str(run / spec), *args, "-o", str(out)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()
