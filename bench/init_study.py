"""Which initialisation trains the best models: rnnc's schemes against a hand-written PyTorch loop.

    OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python bench/init_study.py [--seeds 5] [--tasks a,b]

A suite of small tasks (bench/init_tasks.py): shipped specs, examples and tasks of
this file's own of each kind (classification, regression, text, variable length).
Each is trained by rnnc (`rnnc_torch.fit.fit`) once per `training.initializer` scheme
and seed, and by a plain hand-written PyTorch loop (nn.LSTM/GRU/RNN, nn.Embedding,
nn.Linear with torch's own initialisation; the same optimizer and settings, batch,
epochs, loss, gradient clipping and cosine schedule, shuffled each epoch by a generator
seeded apart from its weights), on the same arrays. Every run trains a fixed number of epochs without early stopping or a
plateau schedule (so that both loops are the same loop and the held-out set stays
held out), then its metric is measured on held-out data (the test set, else the
validation set). Writes bench/results/init_study.json (`--out`): per task and scheme,
the metric per seed, median and min-max, and (bench/init_stats.py) each arm's median and
mean with 95% bootstrap intervals and `hybrid` - the hand loop's difference with its
interval and permutation p-value, with the CPU, its vector extensions, the load average
and torch's version. The file is rewritten after every seed of every task, and
`--resume` carries on from it after a crash. A scheme that starts a seed from the same
weights as a scheme already run (hybrid and keras on models without simple_rnn or gru)
takes that run's result rather than training the same model again. Not a timing benchmark (run it under nice,
no lock).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from init_stats import versus  # noqa: E402
from init_tasks import ALL, TASKS, Task  # noqa: E402

from rnnc import ir  # noqa: E402
from rnnc.artifacts import atomic_write_bytes  # noqa: E402

SCHEMES = ir.INITIALIZERS
HAND = "hand-written PyTorch"
RESULTS = Path(__file__).resolve().parent / "results" / "init_study.json"


def machine() -> dict:
    """The CPU model, the vector extensions that matter here, load and versions."""
    model, flags = platform.processor(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not flags:
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return {"cpu": model, "isa": [f for f in wanted if f in flags], "cores": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "python": platform.python_version()}


# --- the hand-written loop -------------------------------------------------------------


class Hand(nn.Module):
    """The chain's layers as torch's own modules, torch's own initialisation."""

    def __init__(self, model: ir.Model):
        super().__init__()
        self.layers = nn.ModuleList()
        self.kinds: list[str] = []
        for node in model.nodes:
            layer, features = node.layer, node.input_shape[-1]
            match layer:
                case ir.Embedding():
                    self.layers.append(nn.Embedding(layer.vocab_size, layer.dim))
                case ir.SimpleRNN() | ir.LSTM() | ir.GRU():
                    cls = {"simple_rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[layer.kind]
                    rnn = cls(features, layer.units, batch_first=True, bidirectional=layer.bidirectional)
                    self.layers.append(nn.ModuleDict({"drop": nn.Dropout(layer.dropout), "rnn": rnn}))
                case ir.Dense():
                    self.layers.append(nn.Linear(features, layer.units))
                case ir.Dropout():
                    self.layers.append(nn.Dropout(layer.rate))
                case _:
                    raise AssertionError(f"the hand-written loop has no {layer.kind}")
            self.kinds.append(layer.kind)
        self.nodes = model.nodes

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """The logits (the last dense layer without its sigmoid or softmax)."""
        last = len(self.nodes) - 1 - next(i for i, n in enumerate(reversed(self.nodes)) if isinstance(n.layer, ir.Dense))
        for i, (node, module) in enumerate(zip(self.nodes, self.layers)):
            layer = node.layer
            if isinstance(layer, ir.Recurrent):
                x = module["drop"](x)
                rnn = module["rnn"]
                if lengths is None:
                    out, h = rnn(x)
                else:
                    packed = nn.utils.rnn.pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
                    out, h = rnn(packed)
                    out = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]
                if not layer.return_sequences:
                    h = h[0] if isinstance(h, tuple) else h
                    x = torch.cat(list(h[-layer.directions:]), dim=-1)
                else:
                    x = out
            elif isinstance(layer, ir.Dense):
                x = module(x)
                if i != last:
                    x = _activate(x, layer.activation)
            else:
                x = module(x)
        return x


def _activate(x: torch.Tensor, name: str) -> torch.Tensor:
    return {"linear": lambda v: v, "relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[name](x)


def hand_optimizer(model: ir.Model, params) -> torch.optim.Optimizer:
    o = model.optimizer
    match o.type:
        case "adam":
            return torch.optim.Adam(params, lr=o.lr, betas=(o.beta_1, o.beta_2), eps=o.epsilon)
        case "adamw":
            return torch.optim.AdamW(params, lr=o.lr, betas=(o.beta_1, o.beta_2), eps=o.epsilon, weight_decay=o.weight_decay)
        case "rmsprop":
            return torch.optim.RMSprop(params, lr=o.lr, alpha=o.rho, eps=o.epsilon, momentum=o.momentum)
    raise AssertionError(o.type)


def hand_loss(model: ir.Model):
    loss = model.loss
    match loss.type:
        case "binary_crossentropy":
            return nn.BCEWithLogitsLoss()
        case "sparse_categorical_crossentropy":
            return nn.CrossEntropyLoss()
        case "mse":
            return nn.MSELoss()
        case "mae":
            return nn.L1Loss()
        case "huber":
            return nn.HuberLoss(delta=loss.delta)
    raise AssertionError(loss.type)


def train_hand(task: Task, model: ir.Model, seed: int) -> np.ndarray:
    """The hand-written loop; its predictions on the held-out set. `seed` draws the weights
    (then dropout) from torch's global generator; the epochs' shuffles come from a
    generator of their own, seeded with a number derived from `seed` (SeedSequence), so
    the order is not the weights' own stream again: seeding both with `seed` made the
    first permutation a function of the first weights, which on seed_binary alone was
    worth two points over 20 seeds."""
    torch.manual_seed(seed)
    net = Hand(model)
    optimizer = hand_optimizer(model, net.parameters())
    loss_fn = hand_loss(model)
    t = model.training
    x, y = torch.from_numpy(task.train.x), torch.from_numpy(task.train.y)
    lengths = None if task.train.lengths is None else torch.from_numpy(task.train.lengths)
    order = torch.Generator().manual_seed(shuffle_seed(seed))
    base = model.optimizer.lr
    for epoch in range(t.epochs):
        if t.lr_schedule is not None:  # cosine, as rnnc's (CosineAnnealingLR, T_max = epochs, per epoch)
            lr = t.lr_schedule.min_lr + (base - t.lr_schedule.min_lr) * (1 + math.cos(math.pi * epoch / t.epochs)) / 2
            for group in optimizer.param_groups:
                group["lr"] = lr
        net.train()
        for rows in torch.randperm(len(x), generator=order).split(t.batch_size):
            out = net(x[rows], None if lengths is None else lengths[rows])
            target = y[rows]
            if model.loss.type == "binary_crossentropy" or out.dim() == target.dim():
                target = target.view_as(out)
            loss = loss_fn(out, target)
            optimizer.zero_grad()
            loss.backward()
            if t.gradient_clip is not None:
                nn.utils.clip_grad_norm_(net.parameters(), t.gradient_clip)
            optimizer.step()
    net.eval()
    with torch.no_grad():
        held = task.held_out
        out = net(torch.from_numpy(held.x), None if held.lengths is None else torch.from_numpy(held.lengths))
        if model.loss.type == "binary_crossentropy":
            out = torch.sigmoid(out)
        elif model.loss.type == "sparse_categorical_crossentropy":
            out = torch.softmax(out, dim=-1)
    return out.numpy()


def initial_weights(model: ir.Model) -> dict[str, np.ndarray]:
    """The weights rnnc's trainer starts `model` from (its seed, then `build_module`)."""
    from rnnc_torch.model import build_module

    torch.manual_seed(model.training.seed)
    return build_module(model).ir_state()


def same_weights(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def shuffle_seed(seed: int) -> int:
    """The hand loop's shuffling seed for weight seed `seed`: well mixed, never `seed` itself."""
    return int(np.random.SeedSequence([seed, 7919]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def train_rnnc(task: Task, model: ir.Model) -> np.ndarray:
    """rnnc's loop (`fit`); its predictions on the held-out set."""
    from rnnc_torch.fit import fit

    history = fit(model, task.train.x, task.train.y, task.train.lengths, device="cpu", progress=False, verbose=False)
    module = history.module
    module.eval()
    held = task.held_out
    with torch.no_grad():
        out = module(torch.from_numpy(held.x), None if held.lengths is None else torch.from_numpy(held.lengths))
    return out.numpy()


def score(task: Task, predictions: np.ndarray) -> float:
    truth = task.held_out.y
    match task.metric:
        case "accuracy":
            if predictions.shape[-1] == 1:
                return float(np.mean((predictions.reshape(-1) > 0.5) == (truth.reshape(-1) > 0.5)))
            return float(np.mean(predictions.argmax(-1) == truth.reshape(-1)))
        case "mae":
            return float(np.mean(np.abs(predictions.reshape(truth.shape) - truth)))
        case "mse":
            return float(np.mean((predictions.reshape(truth.shape) - truth) ** 2))
    raise AssertionError(task.metric)


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "seeds": values}


def run_task(task: Task, seeds: list[int], schemes: list[str], done: dict[str, list[float]] | None = None,
             checkpoint=None) -> dict:
    """Every seed under every scheme (after those already `done`), calling
    `checkpoint(entry)` with what is done so far after each seed."""
    started = time.perf_counter()
    by_scheme: dict[str, list[float]] = {s: list(v) for s, v in (done or {}).items() if s in schemes}
    finished = min((len(by_scheme.get(s, [])) for s in schemes), default=0)
    by_scheme = {s: v[:finished] for s, v in by_scheme.items()}
    for seed in seeds[finished:]:
        starts: list[tuple[str, dict[str, np.ndarray]]] = []  # this seed's schemes and their initial weights
        for scheme in schemes:
            if scheme == HAND:
                by_scheme.setdefault(HAND, []).append(score(task, train_hand(task, task.model("torch", seed), seed)))
                continue
            model = task.model(scheme, seed)
            weights = initial_weights(model)
            twin = next((s for s, w in starts if same_weights(w, weights)), None)
            starts.append((scheme, weights))
            if twin is not None:  # the same start trains the same model (hybrid and keras without simple_rnn or gru)
                by_scheme.setdefault(scheme, []).append(by_scheme[twin][-1])
                continue
            torch.manual_seed(seed)
            by_scheme.setdefault(scheme, []).append(score(task, train_rnnc(task, model)))
        print(f"  {task.name} seed {seed}: " + ", ".join(f"{k} {v[-1]:.4f}" for k, v in by_scheme.items()), flush=True)
        if checkpoint is not None and seed != seeds[-1]:
            checkpoint(task_entry(task, by_scheme, time.perf_counter() - started))
    return task_entry(task, by_scheme, time.perf_counter() - started)


def task_entry(task: Task, by_scheme: dict[str, list[float]], seconds: float) -> dict:
    """A task's results: per scheme, the metric per seed and its summary; with the hand
    loop among them, the statistics of `hybrid` (else `keras`) against it."""
    higher = task.metric == "accuracy"
    return with_versus({"kind": task.kind, "source": task.source, "metric": task.metric, "higher_is_better": higher,
            "held_out": task.held_out_name, "samples": [len(task.train), len(task.held_out)], "settings": task.settings,
            "seconds": round(seconds, 1), "results": {k: summary(v) for k, v in by_scheme.items() if v}})


def with_versus(entry: dict) -> dict:
    """`entry` with the statistics of each of rnnc's schemes against the hand loop, when it has both."""
    results = entry["results"]
    if HAND in results and len(results[HAND]["seeds"]) >= 2:
        entry["versus"] = {s: versus(r["seeds"], results[HAND]["seeds"], entry["higher_is_better"])
                           for s, r in results.items() if s != HAND and len(r["seeds"]) >= 2}
    return entry


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0, help="the seeds are first-seed, first-seed + 1, ...")
    parser.add_argument("--resume", action="store_true", help="carry on from --out: its finished tasks and seeds are kept")
    parser.add_argument("--tasks", default="", help="comma-separated task names (default: all)")
    parser.add_argument("--schemes", default="", help=f"comma-separated schemes (default: all and '{HAND}'); "
                                                      "the other schemes' results in --out are kept")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    wanted = [t for t in args.tasks.split(",") if t]
    schemes = [HAND if s == "hand" else s for s in args.schemes.split(",") if s] or [*SCHEMES, HAND]
    unknown = sorted(set(wanted) - set(ALL)) + sorted(set(schemes) - {*SCHEMES, HAND})
    if unknown:
        print(f"init_study: unknown task(s) or scheme(s) {', '.join(unknown)}; the tasks: {', '.join(TASKS)} (and, named, {', '.join(sorted(set(ALL) - set(TASKS)))}); "
              f"the schemes: {', '.join(SCHEMES)}, {HAND}", file=sys.stderr)
        return 2
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    result = {"machine": machine(), "load_before": list(os.getloadavg()), "seeds": seeds,
              "schemes": [s for s in [*SCHEMES, HAND] if s in schemes], "tasks": {}}
    kept: dict = {}
    runs: list = []  # each invocation's schemes, tasks, seconds and 1-minute load averages before and after
    partial: dict = {}  # --resume: the seeds done of the task a crash interrupted
    if (wanted or args.schemes or args.resume) and args.out.exists():  # the others' results are kept
        previous = json.loads(args.out.read_text())
        kept, runs = previous["tasks"], previous.get("runs", [])
        result["machine"] = previous["machine"]  # the first run's; each later run names its own
        if args.resume:
            if previous["seeds"] != seeds:
                print(f"init_study: {args.out} has seeds {previous['seeds'][0]}-{previous['seeds'][-1]}, "
                      f"not {seeds[0]}-{seeds[-1]}", file=sys.stderr)
                return 2
            result["load_before"] = previous["load_before"]
            partial = {name: task for name, task in kept.items() if task.get("seeds_done", len(seeds)) < len(seeds)}
            kept = {name: task for name, task in kept.items() if name not in partial}
        result["tasks"] = dict(kept)
        result["schemes"] = [s for s in [*SCHEMES, HAND] if s in schemes or s in previous["schemes"]]
    run = {"schemes": schemes, "tasks": [], "load": [os.getloadavg()[0]], "seconds": 0.0, "machine": machine()}
    result["runs"] = [*runs, run]
    started = time.perf_counter()
    for name, make in (ALL if wanted else TASKS).items():
        if wanted and name not in wanted:
            continue
        if args.resume and name in kept:
            continue
        task = make()
        print(f"{name}: {task.kind}, {len(task.train)} samples, {task.metric} on {task.held_out_name}", flush=True)

        def checkpoint(so_far: dict, name: str = name) -> None:
            so_far["seeds_done"] = min(len(r["seeds"]) for r in so_far["results"].values())
            result["tasks"][name] = so_far
            atomic_write_bytes(args.out, (json.dumps(result, indent=1) + "\n").encode())

        done = {s: r["seeds"] for s, r in partial.get(name, {}).get("results", {}).items()}
        entry = run_task(task, result["seeds"], schemes, done, checkpoint)
        if name in partial:
            entry["seconds"] = round(entry["seconds"] + partial[name]["seconds"], 1)
        if name in kept:  # the schemes not run again keep their results, in the order of `schemes`
            entry["seconds"] = round(entry["seconds"] + kept[name]["seconds"], 1)
            entry["results"] = {**kept[name]["results"], **entry["results"]}
        order = result["schemes"]
        entry["results"] = {s: entry["results"][s] for s in sorted(entry["results"], key=order.index)}
        result["tasks"][name] = with_versus(entry)
        result["load_after"] = list(os.getloadavg())
        run["tasks"].append(name)
        run["load"] = [run["load"][0], os.getloadavg()[0]]
        run["seconds"] = round(time.perf_counter() - started, 1)
        atomic_write_bytes(args.out, (json.dumps(result, indent=1) + "\n").encode())  # what is done so far
    print(f"wrote {args.out} ({run['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
