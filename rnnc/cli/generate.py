"""`rnnc generate RUN_DIR|MODEL.onnx`: text from a next-token model, answers from a sequence-to-sequence one.

A next-token model (its feedback input is its only input) continues `--prompt`:
the prompt goes through the decoder step graph as one chunk, then each new token costs
one step, and its text goes to stdout as soon as it is chosen (characters joined,
words with spaces; ids with spaces for a model without a vocabulary). It samples
(`--temperature`, `--top-k`, `--top-p`, `--seed`) unless `--greedy` or `--beam K`, and
stops at the spec's end id or after `-n` tokens. A sequence-to-sequence model decodes
`--prompt` as one question (through the model's vocabulary, else space-separated ids)
or every question of `--input FILE.npz`, one line each: greedy unless told to sample
or `--beam K`, up to the spec's max_length or `-n`. Nothing here imports torch.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

from rnnc.errors import UsageError

if TYPE_CHECKING:
    from rnnc.runtime_decode import Decoder
    from rnnc.sampling import Sampling

DEFAULT_TOKENS = 200  # a next-token model's -n when none is given


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("generate", help="sample from a next-token model, or decode a sequence-to-sequence model (onnxruntime)")
    parser.add_argument("model", metavar="MODEL|RUN_DIR", help="model.onnx of a model with a feedback output, or its run directory")
    parser.add_argument("--prompt", metavar="P", help="the text to continue, or the question to answer (ids with spaces for a model without a vocabulary)")
    parser.add_argument("--input", metavar="FILE.npz", help="sequence-to-sequence: decode every question of this file, one line each")
    parser.add_argument("-n", type=int, metavar="N", help=f"at most N new tokens (default: {DEFAULT_TOKENS}; the spec's max_length for sequence-to-sequence)")
    parser.add_argument("--temperature", type=float, metavar="T", help="sample from p^(1/T) renormalised (default 1)")
    parser.add_argument("--top-k", type=int, metavar="K", help="sample among the K likeliest tokens only")
    parser.add_argument("--top-p", type=float, metavar="P", help="sample among the fewest likeliest tokens whose probabilities reach P (nucleus)")
    parser.add_argument("--seed", type=int, metavar="S", help="seed of the sampler: the same seed gives the same tokens")
    parser.add_argument("--greedy", action="store_true", help="always the likeliest token (no sampling)")
    parser.add_argument("--beam", type=int, metavar="K", help="beam search keeping K sequences (--beam 1 is greedy)")
    parser.add_argument("--batch-size", type=int, default=256, metavar="N", help="--input: questions per run (default: 256)")
    parser.add_argument("--stats", action="store_true", help="print on stderr how many tokens, how long, and tokens per second after the first")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="execution provider (cuda needs onnxruntime-gpu)")
    parser.add_argument("--threads", type=int, metavar="N", help="intra-op threads (default: one for one sequence)")
    parser.set_defaults(run=run)


def sampling_of(args: argparse.Namespace, default_sample: bool) -> Sampling | None:
    """The `Sampling` the flags ask for (None: greedy or beam); every bad flag together."""
    from rnnc.sampling import Sampling

    flags = {"--temperature": args.temperature, "--top-k": args.top_k, "--top-p": args.top_p, "--seed": args.seed}
    given = [flag for flag, value in flags.items() if value is not None]
    problems = []
    if args.beam is not None and args.beam < 1:
        problems.append(f"--beam must be at least 1, got {args.beam}")
    if args.beam is not None and given:
        problems.append(f"--beam searches for the likeliest sequence and samples nothing: drop {', '.join(given)}")
    if args.greedy and given:
        problems.append(f"--greedy takes the likeliest token and samples nothing: drop {', '.join(given)}")
    if args.greedy and args.beam is not None:
        problems.append("--greedy and --beam: choose one (--beam 1 is greedy)")
    sample = Sampling(args.temperature if args.temperature is not None else 1.0, args.top_k, args.top_p, args.seed)
    problems += sample.problems()
    if args.n is not None and args.n < 1:
        problems.append(f"-n must be at least 1, got {args.n}")
    if args.batch_size < 1:
        problems.append(f"--batch-size must be at least 1, got {args.batch_size}")
    if problems:
        raise UsageError("\n".join(problems))
    if args.greedy or args.beam is not None or not (given or default_sample):
        return None
    return sample


def run(args: argparse.Namespace) -> int:
    from rnnc.runtime_decode import load_decoder

    sampling_of(args, default_sample=True)  # bad flags before the model is opened
    decoder = load_decoder(args.model, device=args.device, threads=args.threads)
    began = time.perf_counter()
    first: list[float] = []  # when the first new token came (next-token models)
    if decoder.next_token:
        if args.input is not None:
            raise UsageError(f"--input is for a sequence-to-sequence model; {decoder.path} continues a --prompt")
        count = _continue(args, decoder, first)
    else:
        count = _answer(args, decoder)
    if args.stats:
        print(_stats(count, began, time.perf_counter(), first), file=sys.stderr)
    return 0


def _stats(count: int, began: float, ended: float, first: list[float]) -> str:
    """`200 tokens in 0.08 s: the first after 0.02 s (the prompt's chunk), then 2,561 tokens/s`."""
    text = f"{count} tokens in {ended - began:.2f} s"
    if first and count > 1 and ended > first[0]:
        return text + f": the first after {first[0] - began:.3f} s (the prompt's chunk), then {(count - 1) / (ended - first[0]):,.0f} tokens/s"
    return text + (f" ({count / (ended - began):,.0f} tokens/s)" if ended > began else "")


def _continue(args: argparse.Namespace, decoder: Decoder, first: list[float]) -> int:
    """The prompt, then each new token's text as it comes; the number of new tokens.
    `first` gets the time the first one came."""
    sample = sampling_of(args, default_sample=True)
    n = args.n if args.n is not None else DEFAULT_TOKENS
    prompt = args.prompt if args.prompt is not None else ""
    if unknown := decoder.unknown_tokens(prompt):
        shown = ", ".join(repr(t) for t in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        print(f"rnnc generate: warning: the prompt has {len(unknown)} token{'s' if len(unknown) > 1 else ''} "
              f"the model never saw in training ({shown}), each read as the unknown token", file=sys.stderr)
    out = sys.stdout
    if args.beam is not None and args.beam > 1:
        ids = decoder.generate_beam(prompt, n, args.beam)
        out.write(prompt + decoder.continuation(ids, after=bool(prompt)) + "\n")
        return len(ids)
    count, after = 0, bool(prompt)
    try:
        for token in decoder.generate(prompt, n, sample=sample):
            if count == 0:  # the prompt waits for the model's first token: a bad prompt prints nothing
                first.append(time.perf_counter())
                out.write(prompt)
            count += 1
            if token == decoder.plan.end:
                break
            piece = decoder.continuation([token], after=after)
            after = after or bool(piece)
            out.write(piece)
            out.flush()
    finally:
        if count:
            out.write("\n")
            out.flush()
    return count


def _answer(args: argparse.Namespace, decoder: Decoder) -> int:
    """Each question's decoded answer on its own line; the number of tokens decoded."""
    import numpy as np

    sample = sampling_of(args, default_sample=False)
    if (args.prompt is None) == (args.input is None):
        names = ", ".join(decoder.questions)
        raise UsageError(f"{decoder.path}: not a next-token model: it answers questions ({names}); "
                         "give one with --prompt or a file of them with --input FILE.npz")
    if args.prompt is not None:
        inputs = {_only_question(decoder): np.array([decoder.prompt_ids(args.prompt, question=True)], np.int64)}
        decoded = decoder.decode(inputs, beam=args.beam or 1, sample=sample, n=args.n)
        print(decoder.text(decoded.ids[0, : decoded.lengths[0]].tolist()))
        return int(decoded.lengths.sum())
    from rnnc.cli.predict_decode import open_questions

    source = open_questions(args.input, decoder)
    count = 0
    for inputs, lengths in source.batches(args.batch_size):
        decoded = decoder.decode(inputs, lengths, beam=args.beam or 1, sample=sample, n=args.n, batch_size=args.batch_size)
        for row, length in zip(decoded.ids, decoded.lengths, strict=True):
            print(decoder.text(row[:length].tolist()))
        count += int(decoded.lengths.sum())
    sys.stdout.flush()
    return count


def _only_question(decoder: Decoder) -> str:
    names = list(decoder.questions)
    inp = decoder.questions[names[0]]
    if len(names) != 1 or not (inp.token_ids and inp.sequence):
        raise UsageError(f"--prompt is one question of token ids; {decoder.path} reads {', '.join(names)}: "
                         "give them as arrays with --input FILE.npz")
    return names[0]
