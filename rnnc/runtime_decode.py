"""Decoding an exported generative model with onnxruntime and numpy: no torch, no onnx.

A model is generative when an output has `feedback:`; its ONNX export then carries,
beside `X.onnx`, a decoder step graph `X.step.onnx` and, for a sequence-to-sequence
model, an encoder graph `X.encoder.onnx`, named in X.onnx's metadata entry
`rnnc.decoding` (see docs/generation.md). `load_decoder(path)` opens them from a run
directory or X.onnx. `Decoder.decode(inputs)` decodes a batch of questions: the
encoder runs once, its outputs (the values the decoder attends over, the states it
starts from) are fed by name to the step graph, which starts at the spec's start id
and runs one token a call, carrying the recurrent state, until the end id or
`max_length`. `Decoder.generate(prompt)` continues a next-token model's prompt: the
prompt runs through the step graph as one chunk, then each new token costs one call of
one step, however long the text grows. Choosing is `rnnc.sampling`'s: greedy, beam
search, or sampling with temperature, top-k, top-p and a seed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from . import sampling, text
from .errors import ArtifactError, DataError, UsageError
from .runtime_inputs import GraphInput, InputErrors, checked_input, checked_lengths
from .runtime_session import DEFAULT_BATCH_SIZE, MAX_STATE_SIZE, OpenedModel, one_line_error

DECODING_KEY = "rnnc.decoding"
Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class Plan:
    """X.onnx's `rnnc.decoding` entry: output `O` fed back into input `I`, the ids that
    start and end a sequence, the longest one, the files, and how states pair up."""

    output: str
    input: str
    start: int | None
    end: int | None
    max_length: int | None
    encoder: str | None
    step: str
    states: tuple[tuple[str, str], ...]  # (step input, its step output)
    boundary: tuple[str, ...]
    started: tuple[str, ...]


def read_plan(entry: str, origin: str) -> Plan:
    """The plan in `entry` (JSON); an `ArtifactError` naming `origin` when it is not one rnnc writes."""
    bad = ArtifactError(f"{origin}: not a usable rnnc model: its metadata's {DECODING_KEY} entry is not what rnnc writes")
    try:
        data: Any = json.loads(entry)
    except json.JSONDecodeError:
        raise bad from None
    ids = ("start", "end", "max_length")
    names = ("output", "input", "step")
    ok = (isinstance(data, dict)
          and all(isinstance(data.get(k), str) and data[k] for k in names)
          and all(data.get(k) is None or (type(data[k]) is int and data[k] >= 0) for k in ids)
          and (data.get("encoder") is None or isinstance(data.get("encoder"), str)))
    if not ok or data.get("max_length") == 0:
        raise bad
    states, boundary, started = data.get("states", []), data.get("boundary", []), data.get("started", [])
    if not (isinstance(states, list) and all(isinstance(p, list) and len(p) == 2 and all(isinstance(n, str) for n in p) for p in states)
            and isinstance(boundary, list) and all(isinstance(n, str) for n in boundary)
            and isinstance(started, list) and all(isinstance(n, str) for n in started)):
        raise bad
    for file in (data["step"], data.get("encoder")):  # beside X.onnx, never elsewhere
        if file is not None and (os.path.basename(file) != file or file in ("", ".", "..")):
            raise bad
    return Plan(data["output"], data["input"], data.get("start"), data.get("end"), data.get("max_length"),
                data.get("encoder"), data["step"], tuple((a, b) for a, b in states), tuple(boundary), tuple(started))


def load_decoder(path: str | os.PathLike[str], device: str = "cpu", threads: int | None = None) -> Decoder:
    """The decoder of the model at `path` (a run directory's model.onnx, or X.onnx)."""
    target = Path(path)
    if not target.exists():
        raise UsageError(f"{path}: no such run directory or model file")
    if target.is_dir():
        target = target / "model.onnx"
        if not target.is_file():
            raise UsageError(f"{path}: no model.onnx in this run directory")
    return Decoder(target, device, threads)


class Decoder:
    """A generative model's step (and encoder) graphs, ready to decode. `plan` is its
    `rnnc.decoding` entry; `questions` (name -> `GraphInput`) the inputs a question
    holds (none for a next-token model); `vocab` the raw-text vocabulary, if any."""

    def __init__(self, path: str | os.PathLike[str], device: str = "cpu", threads: int | None = None,
                 opened: Any = None):
        """`opened`: X.onnx as `rnnc.runtime.load` opened it already, if it has been."""
        from .runtime import GraphPredictor, load

        self.path = str(path)
        model = opened if opened is not None else load(path, device, threads)
        if DECODING_KEY not in model.metadata:
            raise ArtifactError(f"{self.path}: {_why_not_generative(model)}")
        self.plan = plan = read_plan(model.metadata[DECODING_KEY], self.path)
        assert isinstance(model, GraphPredictor)  # only graphs have feedback outputs
        if plan.input not in model.inputs or plan.output not in model.outputs:
            raise ArtifactError(f"{self.path}: not a usable rnnc model: its {DECODING_KEY} names input '{plan.input}' and "
                                f"output '{plan.output}', which its graph does not have")
        self.model = model
        self.feedback: GraphInput = model.inputs[plan.input]
        self.questions = {n: i for n, i in model.inputs.items() if n != plan.input}
        vocab = model.metadata.get(text.METADATA_KEY)
        self.vocab: text.Vocab | None = None if vocab is None else text.Vocab.from_json(vocab, self.path)
        folder = Path(self.path).parent
        self.stepper = _open_beside(folder / plan.step, self.path, "decoder step", device, threads)
        self.encoder = None if plan.encoder is None else _open_beside(folder / plan.encoder, self.path, "encoder", device, threads)
        if self.questions and self.encoder is None:
            raise ArtifactError(f"{self.path}: not a usable rnnc model: it reads {', '.join(self.questions)} besides "
                                f"{plan.input} but its {DECODING_KEY} names no encoder graph")
        self._match()

    @property
    def next_token(self) -> bool:
        """Whether the model continues a prompt (its feedback input is its only input)."""
        return not self.questions

    def _match(self) -> None:
        """The step and encoder graphs must take and give what the plan says."""
        plan = self.plan
        taken = {i.name: i for i in self.stepper.session.get_inputs()}
        given = [o.name for o in self.stepper.session.get_outputs()]
        self.state_sizes: dict[str, int] = {}
        for name, _ in plan.states:
            size = taken[name].shape[-1] if name in taken else None
            if not (isinstance(size, int) and 1 <= size <= MAX_STATE_SIZE):
                self._unusable(f"its step graph's state input {name} is missing or has no size in [1, {MAX_STATE_SIZE:,}]")
            self.state_sizes[name] = size
        expected_out = [plan.output, *(nxt for _, nxt in plan.states)]
        if given != expected_out or plan.input not in taken:
            self._unusable(f"its step graph takes {sorted(taken)} and gives {given}; its {DECODING_KEY} describes "
                           f"{plan.input}, the states {[n for n, _ in plan.states]}, outputs {expected_out}")
        self.carried = sorted(set(taken) - {plan.input} - set(self.state_sizes))  # boundary values and their lengths
        if self.encoder is None:
            if self.carried:
                self._unusable(f"its step graph takes {', '.join(self.carried)}, which only an encoder graph gives")
            return
        self.encoded = [o.name for o in self.encoder.session.get_outputs()]
        wanted = [*self.carried, *plan.started]
        if missing := [n for n in wanted if n not in self.encoded]:
            self._unusable(f"its encoder graph gives {self.encoded}, not {', '.join(missing)}")
        if bad := [n for n in plan.started if n not in self.state_sizes]:
            self._unusable(f"its {DECODING_KEY} starts {', '.join(bad)}, which is no state of the step graph")
        fed = {i.name for i in self.encoder.session.get_inputs()}
        wanted_in = {*self.questions, *(f"{n}.lengths" for n, i in self.questions.items() if i.takes_lengths)}
        if fed != wanted_in:
            self._unusable(f"its encoder graph takes {sorted(fed)}, not the model's inputs besides {plan.input}: {sorted(wanted_in)}")

    def _unusable(self, why: str) -> NoReturn:
        raise ArtifactError(f"{self.path}: not a usable rnnc model: {why}")

    # --- one step ---------------------------------------------------------------------

    def step(self, tokens: np.ndarray, states: Mapping[str, np.ndarray]) -> tuple[np.ndarray, Arrays]:
        """`(probs [rows, t, V], states after)` for `tokens` `[rows, t]` (every step real),
        `states` the recurrent states and the encoder's values, by name; the values the
        step only reads come back as they went in."""
        rows = len(tokens)
        feed = {self.plan.input: np.ascontiguousarray(tokens, dtype=np.int64), **states}
        try:
            values = self.stepper.session_for(rows).run(None, feed)
        except Exception as err:
            raise DataError(f"onnxruntime could not run the decoder step: {one_line_error(err)}") from None
        after = dict(states)
        for (name, _), value in zip(self.plan.states, values[1:], strict=True):
            after[name] = value
        return values[0], after

    def zero_states(self, rows: int) -> Arrays:
        return {name: np.zeros((rows, size), np.float32) for name, size in self.state_sizes.items()}

    def encode(self, inputs: Mapping[str, Any], lengths: Mapping[str, Any] | None = None, *, start: int = 0) -> Arrays:
        """The step graph's states for a batch of questions: the encoder's values and the
        states it starts, zeros for the others. `inputs` and `lengths` as
        `GraphPredictor.predict` takes them, without the feedback input."""
        arrays, fed = self.checked(inputs, lengths, start=start)
        rows = len(next(iter(arrays.values())))
        assert self.encoder is not None
        feed = {**arrays, **{f"{n}.lengths": v for n, v in fed.items()}}
        try:
            values = self.encoder.session_for(rows).run(self.encoded, feed)
        except Exception as err:
            raise DataError(f"onnxruntime could not run the encoder on this input: {one_line_error(err)}") from None
        out = dict(zip(self.encoded, values, strict=True))
        return {**self.zero_states(rows), **{n: out[n] for n in (*self.carried, *self.plan.started)}}

    def checked(self, inputs: Mapping[str, Any], lengths: Mapping[str, Any] | None = None, *,
                start: int = 0) -> tuple[Arrays, Arrays]:
        """The questions' arrays and their lengths, filled in by each input's rule; an
        `InputErrors` with one line per problem."""
        if not isinstance(inputs, Mapping):
            raise DataError(f"the questions are a dict of arrays keyed {', '.join(self.questions)}")
        lengths = dict(lengths or {})
        problems = [f"missing input '{n}' ({i.layout()})" for n, i in self.questions.items() if n not in inputs]
        problems += [f"unknown input '{n}'; a question holds: {', '.join(self.questions)}"
                     for n in inputs if n not in self.questions]
        problems += [f"lengths given for '{n}', which takes none" for n in lengths
                     if n not in self.questions or not self.questions[n].takes_lengths]
        if problems:
            raise InputErrors(problems)
        arrays: Arrays = {}
        for name, inp in self.questions.items():
            try:
                arrays[name] = checked_input(inp, inputs[name], True, start)
            except DataError as err:
                problems.append(str(err))
        if problems:
            raise InputErrors(problems)
        if len({len(a) for a in arrays.values()}) > 1:
            raise DataError("the inputs hold different numbers of samples: " + ", ".join(f"{n} {len(a)}" for n, a in arrays.items()))
        fed: Arrays = {}
        for name, inp in self.questions.items():
            if inp.takes_lengths:
                try:
                    fed[name] = checked_lengths(inp, arrays[name], lengths.get(name), lowest=0, whole=True, start=start)
                except DataError as err:
                    problems.append(str(err))
        if problems:
            raise InputErrors(problems)
        return arrays, fed

    # --- decoding ---------------------------------------------------------------------

    def limit(self, n: int | None) -> int:
        """How many tokens to decode at most: `n`, else the spec's max_length."""
        if n is not None:
            if n < 1:
                raise UsageError(f"-n must be at least 1, got {n}")
            return n
        if self.plan.max_length is None:
            raise UsageError(f"{self.path}: the spec's feedback gives no max_length; say how many tokens with -n")
        return self.plan.max_length

    def decode(self, inputs: Mapping[str, Any], lengths: Mapping[str, Any] | None = None, *, beam: int = 1,
               sample: sampling.Sampling | None = None, n: int | None = None,
               batch_size: int = DEFAULT_BATCH_SIZE) -> sampling.Decoded:
        """Every question of `inputs` decoded from the start id: greedy, `beam` K, or
        drawn by `sample`; `batch_size` questions at a time."""
        if self.next_token:
            raise UsageError(f"{self.path}: a next-token model continues a prompt; use generate(prompt)")
        if self.plan.start is None:
            self._unusable(f"its {DECODING_KEY} gives no start id for a sequence-to-sequence model")
        limit, choose = self.limit(n), _chooser(beam, sample)
        count = len(np.asarray(next(iter(inputs.values())))) if inputs else 0
        if count == 0:
            self.checked(inputs, lengths)  # the names and layouts still have to be right
            return sampling.Decoded(np.zeros((0, limit), np.int64), np.zeros(0, np.int64), np.zeros(0))
        parts = []
        for begin in range(0, count, batch_size):
            rows = slice(begin, begin + batch_size)
            cut = {k: np.asarray(v)[rows] for k, v in inputs.items()}
            states = self.encode(cut, {k: np.asarray(v)[rows] for k, v in (lengths or {}).items()}, start=begin)
            first = np.full((len(next(iter(cut.values()))), 1), self.plan.start, np.int64)
            parts.append(self._search(first, states, limit, beam, choose))
        return _joined(parts, limit)

    def prompt_ids(self, prompt: str | list[int], *, question: bool = False) -> list[int]:
        """A prompt (or, `question`, the one input of a question) as ids: a list of ids as
        it is; text through the model's vocabulary, or space-separated ids without one. A
        prompt to continue is taken whole and unstripped (a trailing space counts); a
        question is tokenised as the training texts were."""
        inp = next(iter(self.questions.values())) if question else self.feedback
        if isinstance(prompt, list):
            ids = prompt
        elif self.vocab is not None and question:
            ids = self.vocab.ids(prompt)
        elif self.vocab is not None:
            tokens = list(prompt.lower() if self.vocab.lowercase else prompt) if self.vocab.tokenizer == "char" \
                else text.tokenize(prompt, self.vocab.tokenizer, self.vocab.lowercase)
            index = {token: i + text.FIRST_ID for i, token in enumerate(self.vocab.tokens)}
            ids = [index.get(t, text.UNKNOWN) for t in tokens]
        else:
            words = prompt.split()
            if not all(w.isdigit() for w in words):
                raise UsageError(f"--prompt: the model has no vocabulary, so a prompt is token ids separated by spaces; got {prompt!r}")
            ids = [int(w) for w in words]
        top = inp.vocab_size or 0
        if bad := [i for i in ids if not 0 <= i < top]:
            raise UsageError(f"--prompt: token ids must lie in [0, {top - 1}] (vocab_size {top}), got {bad[0]}")
        return ids

    def unknown_tokens(self, prompt: str) -> list[str]:
        """The tokens of a text prompt to continue that the vocabulary lacks (each read
        as the unknown id), in order, each once."""
        if self.vocab is None:
            return []
        tokens = list(prompt.lower() if self.vocab.lowercase else prompt) if self.vocab.tokenizer == "char" \
            else text.tokenize(prompt, self.vocab.tokenizer, self.vocab.lowercase)
        known = set(self.vocab.tokens)
        return list(dict.fromkeys(t for t in tokens if t not in known))

    def generate(self, prompt: str | list[int], n: int, *, sample: sampling.Sampling | None = None) -> Iterator[int]:
        """A next-token model's new tokens after `prompt`, one at a time as each is chosen
        (greedy, or drawn by `sample`), until the end id or `n` of them."""
        first = self._first(prompt)
        choose = sample.chooser() if sample is not None else sampling.greedy_choice
        for ids, _ in sampling.tokens(self.step, first, self.zero_states(1), self.limit(n), self.plan.end, choose):
            yield int(ids[0])

    def generate_beam(self, prompt: str | list[int], n: int, beam: int) -> list[int]:
        """The likeliest continuation of `prompt` found by a beam of `beam`."""
        decoded = sampling.beam_search(self.step, self._first(prompt), self.zero_states(1), self.limit(n), self.plan.end, beam)
        return decoded.ids[0, : decoded.lengths[0]].tolist()

    def _first(self, prompt: str | list[int]) -> np.ndarray:
        if not self.next_token:
            raise UsageError(f"{self.path}: a sequence-to-sequence model decodes questions; use decode(inputs)")
        ids = self.prompt_ids(prompt)
        if not ids and self.plan.start is not None:
            ids = [self.plan.start]
        if not ids:
            raise UsageError("--prompt: a next-token model needs at least one token to continue (its spec gives no start id)")
        return np.array([ids], np.int64)

    def _search(self, first: np.ndarray, states: Arrays, limit: int, beam: int,
                choose: sampling.Chooser | None) -> sampling.Decoded:
        if choose is None:
            return sampling.beam_search(self.step, first, states, limit, self.plan.end, beam)
        return sampling.decode(self.step, first, states, limit, self.plan.end, choose)

    def text(self, ids: list[int]) -> str:
        """Ids as text, without padding or the end id: the vocabulary's tokens (characters
        joined, words with spaces), or the ids with spaces for a model without one."""
        return self.continuation(ids, after=False)

    def continuation(self, ids: list[int], *, after: bool) -> str:
        """The text of `ids` where it continues earlier text (`after`): a word or an id
        after another gets its space in front. Padding and the end id write nothing."""
        ids = [i for i in ids if i != self.plan.end and i != text.PAD]
        if not ids:
            return ""
        lead = " " if after else ""
        if self.vocab is None:
            return lead + " ".join(str(i) for i in ids)
        tokens = self.vocab.tokens
        unknown = "\N{REPLACEMENT CHARACTER}" if self.vocab.tokenizer == "char" else "<unk>"
        words = [tokens[i - text.FIRST_ID] if text.FIRST_ID <= i < len(tokens) + text.FIRST_ID else unknown for i in ids]
        return "".join(words) if self.vocab.tokenizer == "char" else lead + " ".join(words)


def _chooser(beam: int, sample: sampling.Sampling | None) -> sampling.Chooser | None:
    """None for beam search; else greedy or the sampler."""
    if beam < 1:
        raise UsageError(f"--beam must be at least 1, got {beam}")
    if beam > 1 and sample is not None:
        raise UsageError("--beam searches for the likeliest sequence; it does not sample: drop --temperature, --top-k, --top-p, --seed")
    if beam > 1:
        return None
    return sample.chooser() if sample is not None else sampling.greedy_choice


def _joined(parts: list[sampling.Decoded], limit: int) -> sampling.Decoded:
    """The batches' results as one, ids padded to `limit` columns."""
    ids = [np.pad(p.ids, ((0, 0), (0, limit - p.ids.shape[1]))) for p in parts]
    return sampling.Decoded(np.concatenate(ids), np.concatenate([p.lengths for p in parts]),
                            np.concatenate([p.log_probs for p in parts]))


def _open_beside(path: Path, model: str, what: str, device: str, threads: int | None) -> OpenedModel:
    if not path.is_file():
        raise ArtifactError(f"{model}: its {what} graph {path} is missing; the ONNX export writes it beside the model "
                            "(export the model again with rnnc compile --backend onnx)")
    return OpenedModel(path, device, threads)


def _why_not_generative(model: Any) -> str:
    graph = model.metadata.get("graph")
    if graph and '"feedback"' in graph:
        return (f"its metadata has no {DECODING_KEY} entry: it was exported before rnnc could decode; "
                "export it again (rnnc compile --backend onnx) to get its step graph")
    return "the model has no feedback output (spec `feedback:`), so it has nothing to generate; rnnc predict runs it"
