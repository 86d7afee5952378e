"""bench/README.md's tables, rendered from the committed results in bench/results/.

Each results file has a region of its own in the README, between two markers that name
it; this module rewrites what is between them and leaves every other line alone, so
the prose around the tables stays hand-written and the numbers come from one place, the
JSON. A later run refreshes them with one command:

    python bench/run_all.py --json bench/results/run_all.json && python bench/render.py
    python bench/render.py --check       # exit 1, naming each stale region, when the README lags the JSON

tests/bench/test_bench_tables.py runs the check, as a generated schema is checked.
Only the standard library: the check needs neither torch nor onnxruntime.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
README = BENCH / "README.md"
RESULTS = BENCH / "results"
BEGIN = "<!-- rendered by bench/render.py from results/{name}: run the benchmark again rather than edit -->"
END = "<!-- end of results/{name} -->"
# A marker counts at the start of a line only, so the README can quote one, indented.
REGION = re.compile(r"^<!-- rendered by bench/render\.py from results/(?P<name>[\w.-]+\.json)[^\n]*-->\n"
                    r"(?P<body>.*?)^<!-- end of results/(?P=name) -->", re.S | re.M)
TARGETS = {"check": 0.3, "predict": 1.0}  # seconds, cold whole processes (startup.py)
NAMES = ("rnnc", "rnnc int8", "torch", "torch.onnx")
LIBRARY_NAMES = {"numpy": "numpy `matmul`", "onnxruntime": "onnxruntime `MatMul` graph", "torch": "`torch.mm`"}


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def span(r: dict, scale: float = 1.0, digits: int = 0) -> str:
    return f"{r['median'] * scale:.{digits}f} ({r['min'] * scale:.{digits}f}-{r['max'] * scale:.{digits}f})"


def rate_span(r: dict, batch: int) -> str:
    """Sequences/s from seconds per call: the median call, then the slowest and fastest."""
    return f"{batch / r['median']:.0f} ({batch / r['max']:.0f}-{batch / r['min']:.0f})"


def share(rate: float, flops: float, limit: dict) -> float:
    """Percent of the machine's limit (the best library's median sgemm GFLOP/s) that
    `rate` samples/s of `flops` FLOPs each reach."""
    return 100 * rate * flops / (limit["median"] * 1e9)


def limit_lines(results: dict) -> list[str]:
    limit, isa = results["limit"], results["machine"].get("isa", [])
    parts = [limit["all"]] + ([limit["one"]] if limit["one"]["threads"] != limit["all"]["threads"] else [])
    size, points = limit["all"].get("size", 2048), limit["all"].get("points", 3)
    heads = " | ".join(f"GFLOP/s, {plural(p['threads'], 'thread')}" for p in parts)
    out = [f"CPU vector ISA: {', '.join(isa) if isa else 'unknown (no /proc/cpuinfo)'}.", "",
           f"The limit, fp32 sgemm of two {size}x{size} matrices, each library in a process of its own, sampled at "
           f"{plural(points, 'point')} of the run (median, min-max):", "",
           f"| library | BLAS | {heads} |", "|---|---|" + "---|" * len(parts)]
    for library, entry in limit["all"]["libraries"].items():
        cells = []
        for part in parts:
            found = part["libraries"].get(library, {})
            best = "**" if part["best"] == library else ""
            cells.append(f"{best}{span(found)}{best}" if "median" in found else f"failed: {found.get('error', 'not run')}")
        out.append(f"| {LIBRARY_NAMES.get(library, library)} {entry.get('version', '')} | {entry.get('blas', '?')} | "
                   + " | ".join(cells) + " |")
    removed = limit["all"]["libraries"].get("numpy", {}).get("env_removed", {})
    openblas = (f"without {', '.join(f'{k}={v}' for k, v in removed.items())}, which the run's environment set: OpenBLAS "
                "detected the core itself" if removed else "with OpenBLAS's own core detection (the run's environment set no "
                "OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE)")
    best = ", ".join(f"{LIBRARY_NAMES.get(p['best'], p['best'])} on {plural(p['threads'], 'thread')}" for p in parts)
    return out + ["", f"The limit is the best median (bold): {best}. numpy's process ran {openblas}."]


def run_all_tables(results: dict) -> str:
    m, limit, settings = results["machine"], results["limit"], results.get("settings", {})
    keras = results.get("keras", {})
    out = [f"{m['date']}; {m['cpu']}, {m['cores']} cores; torch {m['torch']} ({plural(m['torch_threads'], 'thread')}), onnxruntime "
           f"{m['onnxruntime']}, onnx {m['onnx']}, numpy {m['numpy']}, Python {m['python']}"
           + (f", Keras {keras['versions']['keras']} on TensorFlow {keras['versions']['tensorflow']}" if "versions" in keras else "")
           + f"; load average {results['load_before']:.2f} before, "
           + (f"{', '.join(f'{x:.2f}' for x in results['load_during'])} at the limit's samples, " if results.get("load_during") else "")
           + f"{results['load_after']:.2f} after; {results['seconds']:.0f} s."]
    if settings:
        out[0] += (f" `run_all.py {settings['arguments']}`".rstrip() + f": {settings['reps']} timed training epochs of each system, "
                   f"{settings['reps_1']} calls at batch 1, {settings['reps_256']} at batch 256"
                   + (" (--quick: a short run, wider spreads than a full one)" if settings.get("quick") else "") + ".")
    out += [""] + limit_lines(results) + [""]
    if keras.get("error") or keras.get("note"):
        out += [f"Keras: {keras.get('error') or keras.get('note')}", ""]
    top = limit["all"]
    out += ["Training, samples/s (median, min-max):", "",
            "| workload | rnnc | PyTorch | Keras | rnnc / PyTorch (paired) | rnnc / Keras | MFLOP/sample | % of limit: rnnc, PyTorch, Keras |",
            "|---|---|---|---|---|---|---|---|"]
    for key, r in results.get("train", {}).items():
        k = keras.get(key, {}).get("train")
        paired = r["paired_ratio"]
        shares = [f"{share(rate, r['train_flops'], top):.0f}%" for rate in (r["rnnc"]["median"], r["pytorch"]["median"])]
        shares.append(f"{share(k['median'], r['train_flops'], top):.0f}%" if k else "-")
        cells = [f"{key} {r['name']}", span(r["rnnc"]), span(r["pytorch"]), span(k) if k else "-",
                 f"{paired['median']:.2f} ({paired['min']:.2f}-{paired['max']:.2f})",
                 f"{r['rnnc']['median'] / k['median']:.2f}" if k else "-", f"{r['train_flops'] / 1e6:.3g}", ", ".join(shares)]
        out.append("| " + " | ".join(cells) + " |")
    out += ["", "Inference at batch 1, ms per call (median, min-max; every contender but Keras on 1 thread, rnnc.runtime's choice):", "",
            "| workload | rnnc | rnnc int8 | PyTorch eager | torch.onnx on ORT | Keras predict_on_batch | eager / rnnc | eager / rnnc int8 | torch.onnx / rnnc |",
            "|---|---|---|---|---|---|---|---|---|"]
    for key, r in results.get("infer", {}).items():
        b = r["batch1"]
        k = keras.get(key, {}).get("batch1")
        med = {n: b[n]["median"] for n in NAMES}
        out.append(f"| {key} {r['name']} | " + " | ".join(span(b[n], 1e3, 3) for n in NAMES) + f" | {span(k, 1e3, 2) if k else '-'} | "
                   f"{med['torch'] / med['rnnc']:.2f} | {med['torch'] / med['rnnc int8']:.2f} | {med['torch.onnx'] / med['rnnc']:.2f} |")
    threads_256 = next((r["batch256"]["threads"] for r in results.get("infer", {}).values()), top["threads"])
    out += ["", f"Inference at batch 256, sequences/s (from the median call; slowest-fastest call) on "
            f"{plural(threads_256, 'thread')}, and each system's % of the limit:", "",
            "| workload | rnnc | rnnc int8 | PyTorch eager | torch.onnx on ORT | Keras | rnnc / torch.onnx | % of limit: rnnc, torch.onnx |",
            "|---|---|---|---|---|---|---|---|"]
    for key, r in results.get("infer", {}).items():
        b = r["batch256"]
        k = keras.get(key, {}).get("batch256")
        pct = [f"{share(256 / b[n]['median'], r['flops'], top):.0f}%" for n in ("rnnc", "torch.onnx")]
        out.append(f"| {key} {r['name']} | " + " | ".join(rate_span(b[n], 256) for n in NAMES) + f" | {rate_span(k, 256) if k else '-'} | "
                   f"{b['torch.onnx']['median'] / b['rnnc']['median']:.2f} | {', '.join(pct)} |")
    q = results.get("quantization")
    if q:
        out += ["", f"int8 on a trained model ({q['spec']}, {q['epochs']} epochs, {q['validation']} validation sequences): "
                f"accuracy {q['fp32']['accuracy']:.4f} float32, {q['int8']['accuracy']:.4f} int8 ("
                f"{plural(q['predictions_changed'], 'prediction')} changed, largest probability change {q['max_probability_change']:.3f}); file "
                f"{q['fp32']['bytes']} -> {q['int8']['bytes']} bytes; batch-1 latency {span(q['fp32']['latency'], 1e3, 3)} -> "
                f"{span(q['int8']['latency'], 1e3, 3)} ms."]
    s = results.get("startup")
    if s:
        out += ["", f"Cold start, whole processes (median, min-max): `rnnc check` {span(s['check'], 1, 3)} s (target {TARGETS['check']}), "
                f"`rnnc predict` on one sequence {span(s['predict'], 1, 3)} s (target {TARGETS['predict']}); "
                f"`python -c pass` {span(s['python'], 1, 3)} s."]
    return "\n".join(out + [""] + target_lines(results))


def target_lines(results: dict) -> list[str]:
    """The project's speed targets against this run's numbers."""
    train, infer, s, top = results.get("train", {}), results.get("infer", {}), results.get("startup"), results["limit"]["all"]
    keras = results.get("keras", {})

    def verdict(ok: bool) -> str:
        return "met" if ok else "not met"

    def each(values: dict[str, float], digits: int = 2, unit: str = "x") -> str:
        return ", ".join(f"{key} {value:.{digits}f}{unit}" for key, value in values.items())

    rows = []
    if train:
        paired = {key: r["paired_ratio"]["median"] for key, r in train.items()}
        rows.append(("training >= 1.0x hand-written PyTorch (paired) on every workload", verdict(min(paired.values()) >= 1.0), each(paired)))
        if "b" in paired:
            rows.append(("LSTM workload (b) training 1.25x PyTorch", verdict(paired["b"] >= 1.25), f"{paired['b']:.2f}x"))
        if "a" in train:
            rivals = {"PyTorch": train["a"]["pytorch"]["median"]}
            if keras.get("a", {}).get("train"):
                rivals["Keras"] = keras["a"]["train"]["median"]
            faster = max(rivals, key=rivals.__getitem__)
            ratio = train["a"]["rnnc"]["median"] / rivals[faster]
            rows.append(("seed model (a) 1.2x the faster of PyTorch and Keras", verdict(ratio >= 1.2),
                         f"{ratio:.2f}x {faster} (the faster{'' if 'Keras' in rivals else '; Keras not run'})"))
    if infer:
        eager = {key: r["batch1"]["torch"]["median"] / r["batch1"]["rnnc"]["median"] for key, r in infer.items()}
        rows.append(("batch 1: >= 2x PyTorch eager, float32", verdict(min(eager.values()) >= 2), each(eager)))
        shares = {key: share(256 / r["batch256"]["rnnc"]["median"], r["flops"], top) for key, r in infer.items()}
        rows.append(("batch 256: >= 85% of the limit", verdict(min(shares.values()) >= 85), each(shares, 0, "%")))
        halved = {key: r["batch1"]["rnnc int8"]["median"] / r["batch1"]["rnnc"]["median"] for key, r in infer.items()}
        rows.append(("int8 halves batch-1 latency (int8 / float32 <= 0.5)", verdict(min(halved.values()) <= 0.5)
                     + (f" on {', '.join(k for k, v in halved.items() if v <= 0.5)}" if 0 < sum(v <= 0.5 for v in halved.values()) < len(halved) else ""),
                     each(halved)))
    if s:
        ok = s["check"]["median"] < TARGETS["check"] and s["predict"]["median"] < TARGETS["predict"]
        rows.append((f"`rnnc check` < {TARGETS['check']} s, `rnnc predict` one sequence < {TARGETS['predict']} s, cold", verdict(ok),
                     f"{s['check']['median']:.3f} s and {s['predict']['median']:.3f} s"))
    if not rows:
        return []
    return ["Targets, in this run:", "", "| target | verdict | measured |", "|---|---|---|"] + [f"| {t} | {v} | {m} |" for t, v, m in rows]


def check_speed_table(result: dict) -> str:
    """bench/check_speed.py's table: `rnnc check` on the shipped specs and a 1 GB `.npz`."""
    targets = result["targets"]

    def show(s: dict) -> str:
        return f"{s['median']:.3f} ({s['min']:.3f}-{s['max']:.3f})"

    lines = [f"{result['machine']['date']}; {result['machine']['cores']} cores; Python {result['machine']['python']}, "
             f"numpy {result['machine']['numpy']}; load {result['load_before']:.2f} before, {result['load_after']:.2f} after; "
             f"{result['seconds']:.0f} s. Seconds, median (min-max) of {result['python_startup']['runs']} runs; "
             f"`python -c pass` {show(result['python_startup'])}.", "",
             "| spec | process | in-process | target (process) |", "|---|---|---|---|"]
    for name, r in result["shipped"].items():
        within = "within" if r["process"]["median"] <= targets["shipped"] else "OVER"
        lines.append(f"| specs/{name}.yaml | {show(r['process'])} | {show(r['in_process'])} | {targets['shipped']} s: {within} |")
    for variant in ("stored", "compressed"):
        r = result[f"npz_{variant}"]
        within = "within" if r["process"]["median"] <= targets["npz"] else "OVER"
        lines.append(f"| {r['array_bytes'] / 1e9:.2f} GB of arrays, np.savez{'_compressed' if variant == 'compressed' else ''} "
                     f"({r['file_bytes'] / 1e6:,.1f} MB file) | {show(r['process'])} | {show(r['in_process'])} | "
                     f"{targets['npz']} s: {within} |")
    return "\n".join(lines)


def graph_model_table(result: dict) -> str:
    """bench/graph_model.py's table: a spec-v2 graph trained by rnnc and by hand, and
    its exported graphs at batch 1."""
    m, train, infer = result["machine"], result["train"], result["infer"]
    paired = train["paired_ratio"]
    head = (f"{m['date']}; {m['cpu']}, {m['cores']} cores; torch {m['torch']}, onnxruntime {m['onnxruntime']}, "
            f"onnx {m['onnx']}; {plural(result['settings']['threads'], 'torch thread')} for training; load average "
            f"{result['load_before']:.2f} before, {result['load_after']:.2f} after; {result['seconds']:.0f} s"
            + (" (--quick: a short run)" if result["settings"].get("quick") else "") + f". `{result['spec']}`, "
            f"{train['samples']:,} training samples, batch {train['batch']}, {train['reps']} timed epochs each.")
    rows = ["| | rnnc | hand-written PyTorch | rnnc / PyTorch (paired) |", "|---|---|---|---|",
            f"| training, samples/s | {span(train['rnnc'])} | {span(train['pytorch'])} | "
            f"{paired['median']:.2f} ({paired['min']:.2f}-{paired['max']:.2f}) |"]
    names = ("rnnc", "rnnc bare", "torch.onnx", "torch")
    latency = [f"Batch 1, ms per call (median, min-max; {infer['calls']} calls each, one thread; outputs agree to "
               f"{infer['agreement']:.0e} on the test set):", "",
               "| rnnc (`rnnc.runtime`) | rnnc's graph, bare onnxruntime | torch.onnx on onnxruntime | PyTorch eager | "
               "torch.onnx / rnnc | torch.onnx / rnnc bare |", "|---|---|---|---|---|---|",
               "| " + " | ".join(span(infer[n], 1e3, 3) for n in names)
               + f" | {infer['torch.onnx']['median'] / infer['rnnc']['median']:.2f} | "
               f"{infer['torch.onnx']['median'] / infer['rnnc bare']['median']:.2f} |"]
    goals = [f"Goals: training >= 0.95x hand-written PyTorch: {'met' if paired['median'] >= 0.95 else 'not met'} "
             f"({paired['median']:.2f}x); batch 1 >= 1x torch.onnx: "
             f"{'met' if infer['torch.onnx']['median'] >= infer['rnnc']['median'] else 'not met'} "
             f"({infer['torch.onnx']['median'] / infer['rnnc']['median']:.2f}x through rnnc.runtime, "
             f"{infer['torch.onnx']['median'] / infer['rnnc bare']['median']:.2f}x bare)."]
    return "\n".join([head, "", *rows, "", *latency, "", *goals])


def generate_table(result: dict) -> str:
    """bench/generate.py's table: tokens/s of decoding loops for a short and a long text."""
    m, settings, long = result["machine"], result["settings"], result["reread_long"]
    rates = {name: dict(by_n) for name, by_n in result["rates"].items()}
    short, longest = (str(n) for n in settings["counts"])
    model = result["model"]
    head = (f"{m['date']}; {m['cpu']}, {m['cores']} cores; torch {m['torch']}, onnxruntime {m['onnxruntime']}; load average "
            f"{result['load_before']:.2f} before, {result['load_after']:.2f} after; {result['seconds']:.0f} s"
            + (" (--quick: a short run)" if settings.get("quick") else "") + ". A next-token model with random weights: "
            f"embedding({model['vocab']}, {model['embedding']}), GRU({model['gru']}), dense({model['vocab']}) softmax; a "
            f"{result['prompt']}-token prompt, then sampling at temperature 1; batch 1, one thread; {settings['reps']} runs "
            f"of each (median, min-max). Greedy decoding chose the same {result['agreement']['greedy_tokens']} tokens in "
            "every contender.")
    names = ("rnnc", "rnnc step, bare", "torch", "re-read")
    titles = ("rnnc (`rnnc.runtime_decode`)", "rnnc's step graph, a bare loop", "hand-written PyTorch, state carried",
              "re-read the prefix (model.onnx)")
    cell = {name: {n: span(rates[name][n]) for n in rates[name]} for name in names}
    if long["runs"]:
        cell["re-read"][longest] = f"{long['median']:.0f} ({plural(long['runs'], 'run')})"
        rates["re-read"][longest] = long
    rows = ["| tokens/s | " + " | ".join(titles) + " |", "|---|" + "---|" * len(names)]
    for n in (short, longest):
        rows.append(f"| {int(n):,} tokens | " + " | ".join(cell[name].get(n, "-") for name in names) + " |")
    ratio = {name: rates[name][longest]["median"] / rates[name][short]["median"] for name in names if longest in rates[name]}
    rows.append(f"| {int(longest):,} / {int(short):,} | " + " | ".join(f"{ratio[name]:.2f}" if name in ratio else "-"
                                                                     for name in names) + " |")
    ours, few = rates["rnnc"][longest]["median"], rates["rnnc"][short]
    same = few["min"] <= ours <= few["max"]
    claim = (f"Claim: rnnc's tokens/s for {int(longest):,} tokens is its rate for {int(short):,} within noise (the "
             f"{int(longest):,}-token median inside the {int(short):,}-token runs' range): {'met' if same else 'not met'} "
             f"({ours:.0f} against {span(few)}, ratio {ratio['rnnc']:.2f}). rnnc / hand-written PyTorch: "
             f"{rates['rnnc'][short]['median'] / rates['torch'][short]['median']:.2f} at {int(short):,} tokens, "
             f"{ours / rates['torch'][longest]['median']:.2f} at {int(longest):,}.")
    return "\n".join([head, "", *rows, "", claim])


def serve_load_table(result: dict) -> str:
    """bench/serve_load.py's table: requests/s and latency of HTTP servers at 1, 16 and 64 clients."""
    m, settings, model = result["machine"], result["settings"], result["model"]
    clients = [str(c) for c in settings["clients"]]
    head = (f"{m['date']}; {m['cpu']}, {m['cores']} cores; onnxruntime {m['onnxruntime']}; load average "
            f"{result['load_before']:.2f} before, {result['load_after']:.2f} after; {result['seconds']:.0f} s"
            + (" (--quick: a short run)" if settings.get("quick") else "") + f". LSTM({model['lstm']}) over "
            f"{model['steps']} steps of {model['features']} features, dense({model['classes']}) softmax, random weights; "
            f"one-row JSON infer requests back to back, {settings['seconds']:g} s per cell; batched is --max-batch "
            f"{settings['max_batch']} --max-delay-ms {settings['max_delay_ms']:g}. Cells: requests/s, then latency "
            "median / 99th percentile in ms.")
    rows = ["| server | " + " | ".join(f"{plural(int(c), 'client')}" for c in clients) + " |", "|---|" + "---|" * len(clients)]
    for name, by in result["results"].items():
        cells = [f"{by[c]['per_second']:.0f} ({by[c]['p50_ms']:.1f} / {by[c]['p99_ms']:.1f})"
                 + (f", {by[c]['failed']} failed" if by[c]["failed"] else "") for c in clients]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join([head, "", *rows])


# a results file's name starts with its benchmark's: which table it renders as
TABLES: dict[str, Callable[[dict], str]] = {
    "check_speed": check_speed_table, "graph_model": graph_model_table, "generate": generate_table,
    "serve_load": serve_load_table,
}


def _module_tables() -> dict[str, Callable[[dict], str]]:
    """The tables of `bench/render_*.py`: each module names its results' `PREFIX` and
    renders them with `table(result)`, so a new benchmark brings its own renderer."""
    tables = {}
    for path in sorted(BENCH.glob("render_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        tables[module.PREFIX] = module.table
    return tables


def renderer(name: str) -> Callable[[dict], str]:
    """The table for results file `name` (`TABLES` and `bench/render_*.py` by prefix;
    anything else is run_all's)."""
    tables = {**TABLES, **_module_tables()}
    return next((table for prefix, table in tables.items() if name.startswith(prefix)), run_all_tables)


def region(name: str, body: str) -> str:
    return f"{BEGIN.format(name=name)}\n{body.rstrip()}\n{END.format(name=name)}"


def rendered(readme: str, results: Path = RESULTS) -> tuple[str, list[str]]:
    """The README with every region re-rendered from its JSON, and one problem per region
    whose JSON is missing or unreadable (those regions are left as they are)."""
    problems: list[str] = []

    def fill(match: re.Match[str]) -> str:
        name, path = match["name"], results / match["name"]
        try:
            data = json.loads(path.read_text())
        except OSError as error:
            problems.append(f"{path}: cannot read it ({error.strerror})")
            return match[0]
        except ValueError as error:
            problems.append(f"{path}: not JSON ({error})")
            return match[0]
        try:
            return region(name, renderer(name)(data))
        except (KeyError, TypeError, ValueError, AttributeError, ZeroDivisionError) as error:
            problems.append(f"{path}: not a complete {name.split('.')[0]} result ({type(error).__name__}: {error})")
            return match[0]

    text = REGION.sub(fill, readme)
    if not REGION.search(readme):
        problems.append(f"no rendered region (a line starting {BEGIN.split(' from ')[0]!r}) in the README")
    return text, problems


def stale(readme: str, results: Path = RESULTS) -> list[str]:
    """The results files whose region in `readme` differs from a fresh rendering."""
    fresh, _ = rendered(readme, results)
    old = {m["name"]: m[0] for m in REGION.finditer(readme)}
    new = {m["name"]: m[0] for m in REGION.finditer(fresh)}
    return [name for name in old if old[name] != new.get(name)]


def write_atomically(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as out:
        out.write(text)
    os.replace(out.name, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a rendered region is stale")
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--results", type=Path, default=RESULTS, help="the folder of results files")
    args = parser.parse_args(argv)
    try:
        readme = args.readme.read_text()
    except OSError as error:
        print(f"render.py: cannot read {args.readme}: {error.strerror}", file=sys.stderr)
        return 2
    text, problems = rendered(readme, args.results)
    for problem in problems:
        print(f"render.py: {problem}", file=sys.stderr)
    if problems:
        return 2
    if args.check:
        for name in stale(readme, args.results):
            print(f"render.py: {args.readme}'s tables from results/{name} are stale: run python bench/render.py", file=sys.stderr)
        return 1 if text != readme else 0
    if text != readme:
        write_atomically(args.readme, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
