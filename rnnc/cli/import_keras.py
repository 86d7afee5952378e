"""`rnnc import MODEL.keras|MODEL.h5 -o DIR [--force]`: a Keras model as a spec and weights.

Writes DIR/spec.yaml and DIR/weights.safetensors (rnnc.keras_import), both or neither;
needs h5py (`rnnc[keras]`), never Keras. Every layer or argument it cannot map is one
line, placed at its JSON path in the model's config, and the exit status is 2.
"""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("import", help="a Keras model (.keras or .h5) as a spec and a weights file")
    parser.add_argument("model", metavar="MODEL", help="Keras model file: .keras (Keras 3) or legacy .h5")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="directory for spec.yaml and weights.safetensors")
    parser.add_argument("--force", action="store_true", help="replace the spec and weights already in DIR")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rnnc.keras_import import import_model

    done = import_model(args.model, args.output, force=args.force)
    for note in done.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"imported {args.model}: spec version {done.version}, {done.layers} layers, {done.params:,} parameters -> "
          f"{done.spec_path}, {done.weights_path}", file=sys.stderr)
    print(f"next: rnnc compile {done.spec_path} --weights {done.weights_path} -o {done.spec_path.parent / 'model.onnx'}",
          file=sys.stderr)
    return 0
