"""The schema of every spec section but the layers, as Python: input, loss, optimizer,
training, data and export.

Their defaults are read from the IR (the dataclass defaults, and `rnnc.build` for the
ones that depend on the optimizer), and the opset bounds from `ir.EXPORT_OPSETS`, so
the schema cannot announce what rnnc does not apply. `rnnc.schema.generate` joins
these with the layer kinds' branches into spec-v1.json.
"""

from __future__ import annotations

from typing import Any

from .. import build, ir
from ..layers.base import INITIALIZER_HELP

_TRAINING, _STOP, _TEXT, _EXPORT, _LOSS = ir.Training(), ir.EarlyStopping(), ir.TextData(), ir.Export(), ir.Loss("mse")
_STEP, _PLATEAU = ir.LRSchedule("step"), ir.LRSchedule("plateau")
_OPSETS = ir.EXPORT_OPSETS


def _optimizer(kind: str, *settings: str) -> dict[str, Any]:
    """An optimizer's settings with the defaults `build_optimizer` applies to `kind`."""
    built = build.build_optimizer(kind)
    ranges: dict[str, dict[str, Any]] = {
        "lr": {"$ref": "#/$defs/positiveNumber"}, "momentum": {"type": "number", "minimum": 0},
        "nesterov": {"type": "boolean"}, "beta_1": {"$ref": "#/$defs/rate"}, "beta_2": {"$ref": "#/$defs/rate"},
        "rho": {"$ref": "#/$defs/rate"}, "epsilon": {"$ref": "#/$defs/positiveNumber"},
        "weight_decay": {"type": "number", "minimum": 0},
    }
    return {name: {**ranges[name], "default": getattr(built, name)} for name in settings}


METRIC = {"enum": list(ir.METRICS)}

INPUT = {
    "type": "object",
    "required": ["shape"],
    "additionalProperties": False,
    "properties": {
        "shape": {
            "description": "[timesteps, features] for float input, [timesteps] for token ids; timesteps may be null (variable length).",
            "type": "array",
            "minItems": 1,
            "maxItems": 2,
            "prefixItems": [{"type": ["integer", "null"], "minimum": 1}, {"type": "integer", "minimum": 1}],
        },
        "dtype": {"enum": ["float32", "int64"], "default": ir.Input((1,)).dtype},
    },
}

GRAPH_INPUT = {
    "type": "object",
    "required": ["shape"],
    "additionalProperties": False,
    "properties": {
        "shape": {
            "description": "float: [timesteps, features] (a sequence) or [features]; int64: [timesteps] (ids) or [] (one id); "
                           "timesteps may be null (variable length).",
            "type": "array",
            "maxItems": 2,
            "prefixItems": [{"type": ["integer", "null"], "minimum": 1}, {"type": "integer", "minimum": 1}],
        },
        "dtype": {"enum": ["float32", "int64"], "default": "float32"},
    },
}

OUTPUT = {
    "type": "object",
    "required": ["loss"],
    "additionalProperties": False,
    "properties": {
        "loss": {"description": "A loss name, or a mapping with `type` and its settings.", "if": {"type": "string"},
                 "then": {"$ref": "#/$defs/lossName"}, "else": {"$ref": "#/$defs/lossMapping"}},
        "loss_weight": {"type": "number", "minimum": 0, "default": 1.0, "description": "Scales this output's loss in the sum."},
        "metrics": {"type": "array", "uniqueItems": True, "items": {"$ref": "#/$defs/metric"}, "default": []},
        "feedback": {
            "description": "The output predicts the next step of this input (teacher forcing while training); "
                           "decoding starts with id start and stops at end or after max_length steps.",
            "anyOf": [
                {"type": "string"},
                {"type": "object", "required": ["input"], "additionalProperties": False, "properties": {
                    "input": {"type": "string"},
                    "start": {"type": "integer", "minimum": 0},
                    "end": {"type": "integer", "minimum": 0},
                    "max_length": {"type": "integer", "minimum": 1},
                }},
            ],
        },
    },
}

LOSS = {
    "lossName": {"enum": list(ir.LOSSES)},
    "lossMapping": {
        "type": "object",
        "required": ["type"],
        "additionalProperties": False,
        "properties": {
            "type": {"$ref": "#/$defs/lossName"},
            "delta": {"$ref": "#/$defs/positiveNumber", "default": _LOSS.delta, "description": "huber only."},
            "from_logits": {"type": "boolean", "default": _LOSS.from_logits,
                            "description": "The model outputs logits rather than probabilities (classification losses)."},
        },
    },
}

_OPTIMIZER_SCHEMAS = {"sgd": "sgd", "adam": "adam", "adamw": "adam", "rmsprop": "rmsprop", "adagrad": "adagrad"}
OPTIMIZER = {
    "optimizerName": {"enum": list(ir.OPTIMIZERS)},
    "optimizerMapping": {
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"$ref": "#/$defs/optimizerName"}},
        "allOf": [
            {"if": {"properties": {"type": {"const": kind}}, "required": ["type"]}, "then": {"$ref": f"#/$defs/{name}"}}
            for kind, name in _OPTIMIZER_SCHEMAS.items()
        ],
    },
    "sgd": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"type": True, **_optimizer("sgd", "lr", "momentum", "nesterov", "weight_decay")},
    },
    "adam": {
        "description": "adam and adamw; adamw's weight_decay defaults to 0.004 (Keras 3).",
        "type": "object",
        "additionalProperties": False,
        "properties": {"type": True, **_optimizer("adam", "lr", "beta_1", "beta_2", "epsilon", "weight_decay")},
    },
    "rmsprop": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"type": True, **_optimizer("rmsprop", "lr", "rho", "momentum", "epsilon", "weight_decay")},
    },
    "adagrad": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"type": True, **_optimizer("adagrad", "lr", "epsilon", "weight_decay")},
    },
}

TRAINING = {
    "training": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "epochs": {"type": "integer", "minimum": 1, "default": _TRAINING.epochs},
            "batch_size": {"type": "integer", "minimum": 1, "default": _TRAINING.batch_size},
            "seed": {"type": "integer", "minimum": 0, "default": _TRAINING.seed},
            "shuffle": {"type": "boolean", "default": _TRAINING.shuffle},
            "bucket_by_length": {"type": "boolean", "default": _TRAINING.bucket_by_length,
                                 "description": "Each epoch, sort chunks of the shuffled order by sequence length and "
                                                "cut them into batches, drawn in an order shuffled by the seed: a batch "
                                                "of similar lengths pads less. Variable-length input of a chain only."},
            "validation_split": {
                "$ref": "#/$defs/rate", "default": _TRAINING.validation_split,
                "description": "Holds out the last fraction of the training data (as Keras does), used when data.validation is absent.",
            },
            "gradient_clip": {"$ref": "#/$defs/positiveNumber", "description": "Max global gradient norm; absent = off."},
            "tbptt": {"type": "integer", "minimum": 1,
                      "description": "Truncated backpropagation through time: each batch runs in chunks of this many "
                                     "steps, the recurrent state carried from one chunk to the next (gradients stop at "
                                     "chunk edges); absent = the whole sequence at once."},
            "early_stopping": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "monitor": {"type": "string", "default": _STOP.monitor},
                    "patience": {"type": "integer", "minimum": 0, "default": _STOP.patience},
                    "min_delta": {"type": "number", "minimum": 0, "default": _STOP.min_delta},
                    "mode": {"enum": ["auto", "min", "max"], "default": "auto",
                             "description": "auto: max for accuracy, auc, precision, recall and f1; min otherwise."},
                    "restore_best": {"type": "boolean", "default": _STOP.restore_best},
                },
            },
            "lr_schedule": {"$ref": "#/$defs/lrSchedule"},
            "precision": {"enum": ["fp32", "bf16", "fp16"], "default": _TRAINING.precision,
                          "description": "Automatic mixed precision when not fp32: bf16 on CUDA or on a CPU with native bf16 "
                                         "(AVX512_BF16 or AMX; refused on other CPUs), fp16 on CUDA only."},
            "initializer": {"enum": list(ir.INITIALIZERS), "default": _TRAINING.initializer,
                            "description": "How fresh weights start, for every layer without its own initializer: "
                                           f"{INITIALIZER_HELP}; docs/torch-backend.md has the measurements."},
            "kernels": {"enum": ["auto", "torch"], "default": _TRAINING.kernels,
                        "description": "auto: on a CPU, rnnc's own recurrent loop, thread count and sharded steps where "
                                       "they measured faster; torch: torch's own kernels only, as a plain PyTorch loop "
                                       "(the same function; supports higher-order gradients)."},
            "log": {"type": "array", "uniqueItems": True, "items": {"enum": list(ir.LOGGERS)},
                    "description": "Experiment trackers that record the run (none by default; rnnc train --log adds to them): tensorboard "
                                   "event files in the run directory, an MLflow run (docs/tracking.md)."},
        },
    },
    "lrSchedule": {
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"enum": ["step", "cosine", "plateau"]}},
        "allOf": [
            {"if": {"properties": {"type": {"const": kind}}, "required": ["type"]},
             "then": {"additionalProperties": False, "properties": {"type": True, **settings}}}
            for kind, settings in {
                "step": {
                    "step_size": {"type": "integer", "minimum": 1, "default": _STEP.step_size, "description": "Epochs between decays."},
                    "gamma": {"$ref": "#/$defs/positiveNumber", "default": _STEP.gamma},
                },
                "cosine": {
                    "min_lr": {"type": "number", "minimum": 0, "default": _STEP.min_lr, "description": "Reached at the last epoch."},
                },
                "plateau": {
                    "factor": {"$ref": "#/$defs/rate", "default": _PLATEAU.factor},
                    "patience": {"type": "integer", "minimum": 0, "default": _PLATEAU.patience},
                    "min_lr": {"type": "number", "minimum": 0, "default": _PLATEAU.min_lr},
                    "monitor": {"type": "string", "default": _PLATEAU.monitor},
                },
            }.items()
        ],
    },
}

_PATH = {"type": "string", "minLength": 1}
DATA = {
    "description": "Paths are relative to the spec file. .npz holds arrays x, y and optionally lengths and classes; .csv is a time series windowed by `csv`.",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "train": _PATH,
        "validation": _PATH,
        "test": _PATH,
        "csv": {
            "type": "object",
            "required": ["targets", "window"],
            "additionalProperties": False,
            "properties": {
                "features": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"type": "string"},
                             "description": "Columns fed as input; default: every column."},
                "targets": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"type": "string"},
                            "description": "Columns to predict."},
                "window": {"type": "integer", "minimum": 1, "description": "Input steps per sample; equals input.shape[0]."},
                "horizon": {"type": "integer", "minimum": 1, "default": ir.CsvWindows().horizon,
                            "description": "How many steps after the window's last step the target lies."},
                "all_steps": {"type": "boolean", "default": ir.CsvWindows().all_steps,
                              "description": "Predict every step from 1 to horizon (direct multi-step: the targets "
                                             "of each step, step by step), not only the last."},
            },
        },
        "text": {
            "description": "Raw text in .csv or .jsonl files (a next-token graph also reads .txt files, each one stream of tokens), tokenised with a vocabulary built from the training file alone; id 0 is padding, id 1 an unknown token.",
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "column": {**_PATH, "default": _TEXT.column, "description": "The text column (csv) or field (jsonl)."},
                "label": {**_PATH, "default": _TEXT.label, "description": "The label column or field (a next-token graph reads none: its targets are its text)."},
                "tokenizer": {"enum": ["char", "word"], "default": _TEXT.tokenizer},
                "max_vocab": {"type": "integer", "minimum": 1, "default": _TEXT.max_vocab,
                              "description": "The most frequent training tokens kept, besides padding and unknown."},
                "max_length": {"type": "integer", "minimum": 1, "default": _TEXT.max_length, "description": "Tokens past this are cut."},
                "lowercase": {"type": "boolean", "default": _TEXT.lowercase},
            },
        },
    },
}

EXPORT = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "opset": {
            "type": "integer", "minimum": _OPSETS.start, "maximum": _OPSETS.stop - 1, "default": _EXPORT.opset,
            "description": f"The ONNX opset of the exported model: {_OPSETS.start} to {_OPSETS.stop - 1}, the opsets the ONNX backend writes.",
        },
        "streaming": {"type": "boolean", "default": _EXPORT.streaming,
                      "description": "Hidden state as extra graph inputs and outputs, for chunk-by-chunk inference."},
        "quantize": {"enum": ["none", "int8"], "default": _EXPORT.quantize,
                     "description": "int8: dynamic quantisation of the exported weights with onnxruntime's tools."},
    },
}
