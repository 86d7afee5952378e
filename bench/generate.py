"""Tokens/s of `rnnc generate`'s decoding loop, for 100 and for 5,000 tokens.

The model is a character-level next-token model with random weights (the speed of a
loop does not depend on what the weights have learnt): embedding(80, 64), GRU(256)
returning sequences, dense(80) softmax, `feedback: text`, exported by rnnc_onnx
(model.onnx and its step graph, model.step.onnx). Every contender samples (temperature
1, numpy's or torch's generator seeded) from a 10-token prompt, on one thread, batch 1:

- `rnnc`: `rnnc.runtime_decode`, the loop behind `rnnc generate`: the prompt through
  the step graph as one chunk, then one token a call, the GRU's state carried;
- `rnnc step, bare`: the same step graph in a plain onnxruntime loop written here
  (what the loop costs around the graph);
- `re-read`: what one writes with only model.onnx, the full graph on the whole prefix
  for every new token; its cost per token grows with the prefix, so its 5,000-token
  run is timed once and its 100-token run as often as the others;
- `torch`: hand-written PyTorch, `nn.Embedding`, `nn.GRU` with its state carried,
  `nn.Linear`, softmax, `torch.multinomial`, in inference mode, the same weights.

Before anything is timed, every contender decodes greedily from the same prompt and
must choose the same 200 tokens. Runs alternate between contenders (and which goes
first alternates); tokens/s as median and min-max over `--reps` runs each. The claim
the numbers show: with the state carried, 5,000 tokens run at the rate of 100.

    python bench/generate.py --json bench/results/generate.json && python bench/render.py
    python bench/generate.py --quick          # a smoke test: few repetitions, 1,000 tokens
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

import rnnc_onnx
from rnnc.runtime import session_options
from rnnc.spec import model_from_mapping
from run_all import machine
from train_throughput import summary

VOCAB, DIM, UNITS, PROMPT = 80, 64, 256, 10
SPEC = {"rnnc": 2, "name": "chars-bench", "inputs": {"text": {"shape": [None], "dtype": "int64"}},
        "layers": [{"type": "embedding", "vocab_size": VOCAB, "dim": DIM},
                   {"type": "gru", "units": UNITS, "return_sequences": True},
                   {"name": "next", "type": "dense", "units": VOCAB, "activation": "softmax"}],
        "outputs": {"next": {"loss": "sparse_categorical_crossentropy", "feedback": "text"}},
        "optimizer": "adam"}
# Generate(prompt, n, seed or None for greedy) -> the n new ids
Generate = Callable[[np.ndarray, int, int | None], np.ndarray]


class HandNextToken(nn.Module):
    """The spec as one would write it in PyTorch, with a step that carries the state."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, DIM)
        self.gru = nn.GRU(DIM, UNITS, batch_first=True)
        self.head = nn.Linear(UNITS, VOCAB)

    def forward(self, ids: torch.Tensor, h: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        out, h = self.gru(self.embedding(ids), h)
        return torch.softmax(self.head(out[:, -1]), dim=-1), h

    def rnnc_weights(self) -> dict[str, np.ndarray]:
        """The same parameters under rnnc's names (layers.<index>.<param>, torch's layout)."""
        names = {"embedding.weight": "layers.0.weight", "head.weight": "layers.2.weight", "head.bias": "layers.2.bias",
                 **{f"gru.{p}_l0": f"layers.1.{p}" for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}}
        params = dict(self.named_parameters())
        assert sorted(params) == sorted(names), "the name map misses parameters"
        return {names[k]: v.detach().numpy().copy() for k, v in params.items()}


def torch_generator(net: HandNextToken) -> Generate:
    def generate(prompt: np.ndarray, n: int, seed: int | None) -> np.ndarray:
        rng = torch.Generator().manual_seed(seed) if seed is not None else None
        out = np.empty(n, np.int64)
        with torch.inference_mode():
            probs, h = net(torch.from_numpy(prompt[None, :]))
            for i in range(n):
                token = probs.argmax(-1, keepdim=True) if rng is None else torch.multinomial(probs, 1, generator=rng)
                out[i] = token.item()
                if i + 1 < n:
                    probs, h = net(token, h)
        return out

    return generate


def sample(probs: np.ndarray, rng: np.random.Generator | None) -> int:
    """One id from a distribution (float32 softmax, renormalised), or its argmax."""
    if rng is None:
        return int(probs.argmax())
    p = probs.astype(np.float64)
    return int(rng.choice(len(p), p=p / p.sum()))


def reread_generator(path: Path) -> Generate:
    session = ort.InferenceSession(str(path), session_options(1), providers=["CPUExecutionProvider"])

    def generate(prompt: np.ndarray, n: int, seed: int | None) -> np.ndarray:
        rng = np.random.default_rng(seed) if seed is not None else None
        ids = list(prompt)
        for _ in range(n):
            probs = session.run(["next"], {"text": np.array([ids], np.int64), "text.lengths": np.array([len(ids)])})[0]
            ids.append(sample(probs[0, -1], rng))
        return np.array(ids[len(prompt):], np.int64)

    return generate


def bare_step_generator(path: Path) -> Generate:
    """The step graph (`rnnc.decoding`'s `step`) in a plain onnxruntime loop."""
    meta = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    plan = json.loads(meta["rnnc.decoding"])
    session = ort.InferenceSession(str(path.parent / plan["step"]), session_options(1), providers=["CPUExecutionProvider"])
    (state, following), = plan["states"]
    outputs = [plan["output"], following]

    def generate(prompt: np.ndarray, n: int, seed: int | None) -> np.ndarray:
        rng = np.random.default_rng(seed) if seed is not None else None
        out = np.empty(n, np.int64)
        probs, h = session.run(outputs, {plan["input"]: prompt[None, :], state: np.zeros((1, UNITS), np.float32)})
        for i in range(n):
            out[i] = sample(probs[0, -1], rng)
            if i + 1 < n:
                probs, h = session.run(outputs, {plan["input"]: out[None, i : i + 1], state: h})
        return out

    return generate


def rnnc_generator(path: Path) -> Generate:
    """`rnnc.runtime_decode`, as `rnnc generate` runs it (-n N, --seed S, or --greedy)."""
    from rnnc.runtime_decode import load_decoder
    from rnnc.sampling import Sampling

    decoder = load_decoder(path, threads=1)

    def generate(prompt: np.ndarray, n: int, seed: int | None) -> np.ndarray:
        chosen = Sampling(seed=seed) if seed is not None else None
        return np.fromiter(decoder.generate(prompt.tolist(), n, sample=chosen), np.int64, count=n)

    return generate


def contenders(folder: Path) -> tuple[dict[str, Generate], Generate]:
    """(the loops that carry the state, by name; the re-reading loop), on the same weights."""
    torch.manual_seed(0)
    net = HandNextToken().eval()
    path = folder / "model.onnx"
    rnnc_onnx.export(model_from_mapping(SPEC), net.rnnc_weights(), path)
    carrying = {"rnnc": rnnc_generator(path), "rnnc step, bare": bare_step_generator(path), "torch": torch_generator(net)}
    return carrying, reread_generator(path)


def rate(generate: Generate, prompt: np.ndarray, n: int, seed: int) -> float:
    start = time.perf_counter()
    ids = generate(prompt, n, seed)
    seconds = time.perf_counter() - start
    assert len(ids) == n and 0 <= ids.min() and ids.max() < VOCAB
    return n / seconds


def measure(folder: Path, counts: tuple[int, ...], reps: int, reread_long: int, agree: int = 200) -> dict:
    carrying, reread = contenders(folder)
    prompt = np.random.default_rng(0).integers(1, VOCAB, size=PROMPT)
    greedy = {name: generate(prompt, agree, None) for name, generate in {**carrying, "re-read": reread}.items()}
    differ = [name for name, ids in greedy.items() if not np.array_equal(ids, greedy["torch"])]
    assert not differ, f"greedy decoding differs from torch's for {', '.join(differ)}"
    for generate in carrying.values():  # warm-up
        rate(generate, prompt, 50, 0)
    rates: dict[str, dict[int, list[float]]] = {name: {n: [] for n in counts} for name in [*carrying, "re-read"]}
    for rep in range(reps):
        for n in counts:
            order = list(carrying.items()) + ([("re-read", reread)] if n == min(counts) else [])
            for name, generate in order if (rep + n) % 2 == 0 else order[::-1]:
                rates[name][n].append(rate(generate, prompt, n, seed=rep))
    long = [rate(reread, prompt, reread_long, seed=0)] if reread_long else []
    return {"prompt": PROMPT, "agreement": {"greedy_tokens": agree, "same": True},
            "rates": {name: {str(n): summary(v) for n, v in by_n.items() if v} for name, by_n in rates.items()},
            "reread_long": {"tokens": reread_long, "runs": len(long), **(summary(long) if long else {})}}


def report(result: dict) -> str:
    counts = result["settings"]["counts"]
    lines = [f"tokens/s at batch 1, one thread, {result['settings']['reps']} runs each (median, min-max); "
             f"greedy decoding agreed on {result['agreement']['greedy_tokens']} tokens:"]
    for name, by_n in result["rates"].items():
        cells = [f"{n}: {by_n[str(n)]['median']:7.0f} ({by_n[str(n)]['min']:.0f}-{by_n[str(n)]['max']:.0f})"
                 for n in counts if str(n) in by_n]
        lines.append(f"    {name:16s} " + "   ".join(cells))
    long = result["reread_long"]
    if long["runs"]:
        lines.append(f"    {'re-read':16s} {long['tokens']}: {long['median']:7.0f} (one run)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=7, help="timed runs of each contender and length (default 7)")
    parser.add_argument("--quick", action="store_true", help="2 runs, 100 and 1,000 tokens: a smoke test")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    counts, reps = ((100, 1000), 2) if args.quick else ((100, 5000), args.reps)
    torch.set_num_threads(1)
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    result: dict = {"machine": machine(), "load_before": load_before,
                    "settings": {"arguments": " ".join(argv if argv is not None else sys.argv[1:]), "quick": args.quick,
                                 "reps": reps, "counts": list(counts), "threads": 1},
                    "model": {"vocab": VOCAB, "embedding": DIM, "gru": UNITS, "weights": "random (torch's init, seed 0)"}}
    with tempfile.TemporaryDirectory() as folder:
        result.update(measure(Path(folder), counts, reps, reread_long=max(counts)))
    result["load_after"], result["seconds"] = os.getloadavg()[0], time.perf_counter() - started
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
