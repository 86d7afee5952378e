"""`rnnc compile SPEC --backend onnx [--weights W] -o OUT`: a spec lowered to a backend artifact.

The backend must be able to `export` (the built-in `onnx` backend can; `torch` only
trains and infers, so it is refused with a message saying what to use instead). A
backend with an `export(model, weights, path, **options)` method writes the file
itself; otherwise its `compile` result is written when it is bytes or a protobuf
message. Without `--weights` the model gets freshly initialised weights, seeded by
`training.seed`, and a warning says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from rnnc.cli.check import add_overrides_argument
from rnnc.errors import SpecError, UsageError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("compile", help="lower a spec to a backend artifact (e.g. model.onnx)")
    parser.add_argument("spec", metavar="SPEC", help="spec file (YAML)")
    parser.add_argument("--backend", default="onnx", help="backend that writes the artifact (default: onnx)")
    parser.add_argument("--weights", metavar="W", help="trained weights (weights.safetensors from rnnc train)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="file to write, e.g. model.onnx")
    parser.add_argument("--classes", metavar="A,B,...", help="class names recorded in the model's metadata")
    add_overrides_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rnnc.artifacts import load_weights
    from rnnc.plugins import get_backend
    from rnnc.spec import load_model

    model = load_model(args.spec, args.overrides)
    backend = get_backend(args.backend)
    if "export" not in backend.capabilities:
        can = ", ".join(sorted(backend.capabilities))
        raise UsageError(
            f"backend '{args.backend}' cannot export a model file (it can: {can}); "
            "use --backend onnx (rnnc train writes model.onnx as well)"
        )
    weights = load_weights(args.weights, model) if args.weights else None
    if weights is None:
        print(
            f"rnnc compile: warning: no --weights given, so {args.output} holds freshly initialised "
            f"(untrained) weights, seed {model.training.seed}",
            file=sys.stderr,
        )
    options = {"classes": [c.strip() for c in args.classes.split(",")]} if args.classes else {}
    try:
        _write(backend, model, weights, args, options)
    except SpecError as err:  # export settings the backend cannot honour: point at the spec file
        raise SpecError([dataclasses.replace(p, origin=args.spec) for p in err.problems]) from None
    print(f"wrote {args.output}")
    return 0


def _write(backend: Any, model: Any, weights: Any, args: argparse.Namespace, options: dict[str, Any]) -> None:
    from rnnc.artifacts import atomic_write_bytes

    export = getattr(backend, "export", None)
    if callable(export):
        export(model, weights, args.output, **options)
    else:
        artifact = backend.compile(model, weights, **options)
        if isinstance(artifact, bytes):
            data = artifact
        elif callable(getattr(artifact, "SerializeToString", None)):
            data = artifact.SerializeToString()
        else:
            raise UsageError(f"backend '{args.backend}' compiled a {type(artifact).__name__}, which rnnc compile cannot write")
        atomic_write_bytes(args.output, data)
