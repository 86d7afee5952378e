"""A Keras model's compile settings (loss, optimizer, metrics) as a spec's.

What rnnc has under another name maps (`mean_squared_error` -> `mse`, `learning_rate`
-> `lr`, `global_clipnorm` -> `training.gradient_clip`); what it lacks is left out and
said in a note, since it changes how the model would train, never what it predicts.
Without compile settings, defaults are chosen from the output's activation and said so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LOSSES = {
    "binary_crossentropy": "binary_crossentropy", "binarycrossentropy": "binary_crossentropy",
    "categorical_crossentropy": "categorical_crossentropy", "categoricalcrossentropy": "categorical_crossentropy",
    "sparse_categorical_crossentropy": "sparse_categorical_crossentropy",
    "sparsecategoricalcrossentropy": "sparse_categorical_crossentropy",
    "mse": "mse", "mean_squared_error": "mse", "meansquarederror": "mse",
    "mae": "mae", "mean_absolute_error": "mae", "meanabsoluteerror": "mae",
    "huber": "huber", "huber_loss": "huber",
}
OPTIMIZERS = {"adam": "adam", "adamw": "adamw", "sgd": "sgd", "rmsprop": "rmsprop", "adagrad": "adagrad"}
OPTIMIZER_SETTINGS = {
    "sgd": ("momentum", "nesterov", "weight_decay"),
    "adam": ("beta_1", "beta_2", "epsilon", "weight_decay"),
    "adamw": ("beta_1", "beta_2", "epsilon", "weight_decay"),
    "rmsprop": ("rho", "momentum", "epsilon", "weight_decay"),
    "adagrad": ("epsilon", "weight_decay"),
}
DEFAULTS = {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "rho": 0.9}  # Keras's and rnnc's alike
METRICS = {"accuracy": "accuracy", "acc": "accuracy", "binary_accuracy": "accuracy",
           "categorical_accuracy": "accuracy", "sparse_categorical_accuracy": "accuracy",
           "mae": "mae", "mean_absolute_error": "mae", "mse": "mse", "mean_squared_error": "mse",
           "rootmeansquarederror": "rmse", "root_mean_squared_error": "rmse", "auc": "auc",
           "precision": "precision", "recall": "recall", "f1score": "f1", "f1_score": "f1"}


@dataclass
class Compiled:
    loss: Any  # a name or {type, ...}
    optimizer: Any
    metrics: list[str]
    gradient_clip: float | None = None
    notes: list[str] = field(default_factory=list)


def _name(value: Any) -> tuple[str, dict[str, Any]]:
    """A Keras object as (lower-case name, its config): a string or {class_name, config}."""
    if isinstance(value, str):
        return value.lower(), {}
    if isinstance(value, dict):
        config = value.get("config")
        return str(value.get("class_name", "")).lower(), config if isinstance(config, dict) else {}
    return "", {}


def default_loss(final_activation: str) -> str:
    return {"sigmoid": "binary_crossentropy", "softmax": "sparse_categorical_crossentropy"}.get(final_activation, "mse")


def loss_for(value: Any, final_activation: str, notes: list[str], where: str) -> Any:
    name, config = _name(value)
    loss = LOSSES.get(name)
    if loss is None:
        chosen = default_loss(final_activation)
        notes.append(f"{where}: loss {name or value!r} has no rnnc name; {chosen} chosen "
                     f"(from the output's {final_activation} activation)")
        return chosen
    options: dict[str, Any] = {}
    if config.get("from_logits"):
        options["from_logits"] = True
    if loss == "huber" and config.get("delta", 1.0) != 1.0:
        options["delta"] = float(config["delta"])
    if config.get("label_smoothing"):
        notes.append(f"{where}: label_smoothing {config['label_smoothing']} not carried (rnnc has none)")
    return {"type": loss, **options} if options else loss


def optimizer_for(value: Any, notes: list[str]) -> tuple[Any, float | None]:
    name, config = _name(value)
    kind = OPTIMIZERS.get(name)
    if kind is None:
        if value is not None:
            notes.append(f"optimizer {name or value!r} has no rnnc name; adam chosen")
        return "adam", None
    out: dict[str, Any] = {"type": kind}
    rate = config.get("learning_rate")
    if isinstance(rate, (int, float)):
        out["lr"] = float(f"{float(rate):.7g}")  # float32 in the file: 0.003 reads 0.0030000000260770321
    elif rate is not None:
        notes.append(f"optimizer: learning_rate schedule {_name(rate)[0] or rate!r} not carried; "
                     "the optimizer's default lr used (see training.lr_schedule)")
    for key in OPTIMIZER_SETTINGS[kind]:
        setting = config.get(key)
        if isinstance(setting, bool):
            if setting:
                out[key] = True
        elif isinstance(setting, (int, float)) and setting and DEFAULTS.get(key) != float(f"{float(setting):.7g}"):
            out[key] = float(f"{float(setting):.7g}")
    clip = config.get("global_clipnorm")
    for key in ("clipnorm", "clipvalue", "use_ema"):
        if config.get(key):
            notes.append(f"optimizer: {key} not carried (rnnc clips the global norm: training.gradient_clip)")
    return (out if len(out) > 1 else kind), (float(clip) if clip else None)


def metrics_for(values: Any, notes: list[str]) -> list[str]:
    out: list[str] = []
    for value in values if isinstance(values, list) else ([values] if values else []):
        if isinstance(value, list):  # one list per output (Keras 2): the first output's
            value = value[0] if value else None
        name, _ = _name(value)
        metric = METRICS.get(name)
        if metric is None:
            notes.append(f"metric {name or value!r} has no rnnc name; left out")
        elif metric not in out:
            out.append(metric)
    return out


def compiled(compile_config: dict[str, Any] | None, final_activation: str) -> Compiled:
    """Loss, optimizer and metrics for one output whose last activation is `final_activation`."""
    notes: list[str] = []
    if not compile_config:
        loss = default_loss(final_activation)
        notes.append(f"the file has no compile settings: loss {loss} (from the output's {final_activation} "
                     "activation) and optimizer adam chosen")
        return Compiled(loss, "adam", [], None, notes)
    loss = loss_for(compile_config.get("loss"), final_activation, notes, "loss")
    optimizer, clip = optimizer_for(compile_config.get("optimizer"), notes)
    metrics = metrics_for(compile_config.get("metrics"), notes)
    classification = (loss if isinstance(loss, str) else loss["type"]).endswith("crossentropy")
    if not classification and any(m in ("accuracy", "auc", "precision", "recall", "f1") for m in metrics):
        notes.append("classification metrics left out: the loss is a regression loss")
        metrics = [m for m in metrics if m in ("mae", "mse", "rmse")]
    return Compiled(loss, optimizer, metrics, clip, notes)
