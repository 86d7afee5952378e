"""`rnnc compile SPEC --backend onnx|torch [--weights W] [--vocab V] -o OUT`: a spec lowered to a backend artifact.

The backend must be able to `export` (`rnnc.plugins.ExportingBackend`): the built-in
`onnx` backend writes an ONNX model, `torch` a `torch.export` program (`.pt2`); a
plugin backend that cannot is refused with a message saying what to use instead. Its
`check` comes first, and what it refuses is reported at its place in the spec file;
then its `export(model, weights, path, **options)` writes the file. Without `--weights` the
model gets freshly initialised weights, seeded by `training.seed`, and a warning says
so. Recompiling a run's weights gives the model the run wrote: the class names come
from the weights file's metadata unless `--classes` names them (the option wins, with
a warning when the two differ), and a raw-text spec (`data.text`) takes its vocabulary
from `--vocab` or else from the `vocab.json` beside the weights, so `rnnc predict`
reads raw text. The graph itself takes token ids, so a raw-text spec compiled with no
vocabulary at all still works (an untrained model has none yet), with a warning that
it will need ids, not text. A vocabulary for a spec that does not read raw text, one
larger than the embedding, or a file that is not a vocabulary is refused before
anything is written. Both reach the backend as the `classes` and `vocab` options, only
when known.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnc import ir
from rnnc.cli.check import add_overrides_argument
from rnnc.cli.train import placed
from rnnc.errors import ArtifactError, SpecError, UsageError

if TYPE_CHECKING:
    from rnnc.text import Vocab


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("compile", help="lower a spec to a backend artifact (e.g. model.onnx)")
    parser.add_argument("spec", metavar="SPEC", help="spec file (YAML)")
    parser.add_argument("--backend", default="onnx", help="backend that writes the artifact (default: onnx)")
    parser.add_argument("--weights", metavar="W", help="trained weights (weights.safetensors from rnnc train)")
    parser.add_argument(
        "-o", "--output", required=True, metavar="OUT", help="file to write, e.g. model.onnx (onnx) or model.pt2 (torch)"
    )
    parser.add_argument(
        "--classes", metavar="A,B,...", action="append",
        help="class names recorded in the model's metadata (default: those in --weights); for a graph with several "
             "outputs, once per output as OUTPUT=A,B,...",
    )
    parser.add_argument(
        "--vocab", metavar="V", help="raw-text vocabulary (vocab.json from rnnc train; default: the one beside --weights)"
    )
    add_overrides_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rnnc.artifacts import load_weights
    from rnnc.plugins import get_backend
    from rnnc.spec import load_model

    model = load_model(args.spec, args.overrides)
    capabilities = get_backend(args.backend).capabilities
    if "export" not in capabilities:
        can = ", ".join(sorted(capabilities))
        raise UsageError(
            f"backend '{args.backend}' cannot export a model file (it can: {can}); "
            "use --backend onnx or --backend torch (rnnc train writes model.onnx as well)"
        )
    backend = get_backend(args.backend, "export")
    problems = backend.check(model)
    if problems:
        raise SpecError(placed(args.spec, problems, args.overrides))
    weights = load_weights(args.weights, model) if args.weights else None
    notes: list[str] = []  # printed once the file is written, so a refusal stays one line
    if weights is None:
        notes.append(
            f"warning: no --weights given, so {args.output} holds freshly initialised "
            f"(untrained) weights, seed {model.training.seed}"
        )
    options: dict[str, Any] = {}
    classes = _classes(args, model, notes)
    if classes is not None:
        options["classes"] = classes
    vocab = _vocab(args, model, notes)
    if vocab is not None:
        options["vocab"] = vocab
    try:
        backend.export(model, weights, args.output, **options)
    except SpecError as err:  # export settings the backend found only while writing: point at the spec file
        raise SpecError(placed(args.spec, err.problems, args.overrides)) from None
    for note in notes:
        print(f"rnnc compile: {note}", file=sys.stderr)
    print(f"wrote {args.output}")
    return 0


def _classes(args: argparse.Namespace, model: ir.Model, notes: list[str]) -> list[str] | dict[str, list[str]] | None:
    """`--classes` if given, else the names `rnnc train` stored in the weights' metadata."""
    if model.graph is not None:
        return _graph_classes(args, model, notes)
    if args.classes and len(args.classes) > 1:
        raise UsageError("--classes is given once for a v1 spec (one output): --classes A,B,...")
    given = [c.strip() for c in args.classes[0].split(",")] if args.classes else None
    from rnnc.artifacts import stored_classes

    stored = stored_classes(args.weights) if args.weights else None
    if given is not None:
        if stored is not None and stored != given:
            # the option wins (it is the newer word), but a different order relabels every prediction
            notes.append(
                f"warning: --classes {','.join(given)} replaces the class names the weights were trained with "
                f"({','.join(stored)}, in {args.weights})"
            )
        return given
    if stored is not None and not model.loss.is_classification:
        notes.append(f"note: the class names in {args.weights} are not recorded: loss {model.loss.type} has no classes")
        return None
    return stored


def _graph_classes(args: argparse.Namespace, model: ir.Model, notes: list[str]) -> dict[str, list[str]] | None:
    """A graph's class names by output: the weights' (`output_classes`), each output that
    `--classes OUTPUT=A,B` names replaced (with one output, `--classes A,B` will do)."""
    from rnnc.graph_data import stored_output_classes

    names = [out.name for out in model.outputs]
    classes = dict(stored_output_classes(args.weights) or {}) if args.weights else {}
    for given in args.classes or ():
        output, sep, rest = given.partition("=")
        if not sep:
            if len(names) > 1:
                raise UsageError(f"--classes {given}: this graph has outputs {', '.join(names)}; "
                                 "name the output: --classes OUTPUT=A,B,...")
            output, rest = names[0], given
        output = output.strip()
        if output not in names:
            raise UsageError(f"--classes {given}: no output is named '{output}'; outputs: {', '.join(names)}")
        values = [c.strip() for c in rest.split(",")]
        if classes.get(output) not in (None, values):
            notes.append(f"warning: --classes for {output} replaces the class names the weights were trained with "
                         f"({','.join(classes[output])}, in {args.weights})")
        classes[output] = values
    return classes or None


def _vocab(args: argparse.Namespace, model: ir.Model, notes: list[str]) -> Vocab | None:
    """`--vocab` if given, else the run's `vocab.json` beside `--weights` for a raw-text
    spec; checked against the spec (raw text, ids within the embedding)."""
    from rnnc.text import VOCAB_FILE, Vocab

    text = model.data.text
    path, found = args.vocab, False
    if path is None and args.weights and text is not None and (Path(args.weights).parent / VOCAB_FILE).is_file():
        path, found = str(Path(args.weights).parent / VOCAB_FILE), True
    if path is None:
        if text is not None:
            notes.append(
                f"warning: {args.spec} reads raw text (data.text) but no vocabulary was given, so {args.output} "
                f"takes token ids and rnnc predict cannot read raw text with it; pass --vocab runs/NAME/{VOCAB_FILE}"
            )
        return None
    if text is None:
        raise UsageError(f"--vocab {path}: {args.spec} does not read raw text (no data.text), so it takes no vocabulary")
    try:
        vocab = Vocab.from_json(Path(path).read_bytes().decode("utf-8"), path)
    except OSError as err:
        raise ArtifactError(f"{path}: cannot read the vocabulary: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise ArtifactError(f"{path}: the vocabulary is not UTF-8 text") from None
    first = model.nodes[0].layer if model.nodes else None
    if isinstance(first, ir.Embedding) and vocab.size > first.vocab_size:
        raise ArtifactError(
            f"{path}: the vocabulary's {vocab.size} ids (padding, unknown and {len(vocab.tokens)} tokens) "
            f"do not fit the embedding's vocab_size {first.vocab_size}"
        )
    if (vocab.tokenizer, vocab.lowercase) != (text.tokenizer, text.lowercase):
        # the vocabulary says how the weights were trained, so it rules at predict time
        notes.append(
            f"warning: {path} tokenizes as {vocab.tokenizer} (lowercase {str(vocab.lowercase).lower()}), "
            f"the spec's data.text as {text.tokenizer} (lowercase {str(text.lowercase).lower()}); the vocabulary's rule is used"
        )
    if found:
        notes.append(f"using the vocabulary in {path}")
    return vocab
