"""`training.tbptt` on a graph (spec version 2): every sequence input and every per-step
output cut at the same steps, static inputs as they are, each recurrent node's state
carried from chunk to chunk."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from rnnc import ir
from rnnc.errors import DataError, SpecError
from rnnc.graph_data import graph_dataset
from rnnc.spec import load_model, model_from_mapping
from rnnc_torch.graph_trainer import GraphTrainer
from rnnc_torch.model import build_module
from rnnc_torch.tbptt import chunk_lengths

INPUTS = {"series": {"shape": [None, 3]}, "static": {"shape": [2]}}
LAYERS = [
    {"name": "rnn", "type": "lstm", "units": 5, "return_sequences": True, "input": "series"},
    {"name": "ctx", "type": "repeat_vector", "input": "static", "like": "rnn"},
    {"name": "both", "type": "concatenate", "input": ["rnn", "ctx"]},
    {"name": "deep", "type": "gru", "units": 4, "return_sequences": True},
    {"name": "level", "type": "dense", "units": 1},
    {"name": "sign", "type": "dense", "units": 1, "activation": "sigmoid", "input": "deep"},
]
OUTPUTS = {"level": {"loss": "mse"}, "sign": {"loss": "binary_crossentropy", "loss_weight": 0.5}}


def graph(optimizer: object = "adam", **training: object):
    return model_from_mapping({"rnnc": 2, "name": "long-graph", "inputs": INPUTS, "layers": LAYERS, "outputs": OUTPUTS,
                               "optimizer": optimizer, "training": {"epochs": 2, "batch_size": 8, "seed": 2, **training}})


def arrays(n: int = 20, steps: int = 11, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    series = rng.normal(size=(n, steps, 3)).astype(np.float32)
    level = np.cumsum(series[:, :, :1], axis=1) / 3
    return {"series": series, "series_lengths": rng.integers(1, steps + 1, size=n), "static": rng.normal(size=(n, 2)),
            "level": level.astype(np.float32), "sign": (level > 0).astype(np.float32)}


@pytest.mark.parametrize("size", [1, 4, 20])
def test_graph_chunks_with_the_state_carried_give_the_one_pass_outputs(size: int) -> None:
    torch.manual_seed(0)
    module = build_module(graph()).eval()
    series, static = torch.randn(4, 13, 3), torch.randn(4, 2)
    lengths = torch.tensor([13, 0, 6, 9])
    for row, length in enumerate(lengths.tolist()):
        series[row, length:] = 1e4
    with torch.no_grad():
        whole = module({"series": series, "static": static}, {"series": lengths})
        state: dict = {}
        parts: dict[str, list[torch.Tensor]] = {"level": [], "sign": []}
        for begin in range(0, 13, size):
            end = min(begin + size, 13)
            outputs, state = module({"series": series[:, begin:end], "static": static},
                                    {"series": chunk_lengths(lengths, begin, end)}, state=state)
            for name, value in outputs.items():
                parts[name].append(value)
    assert set(state) == {"rnn", "deep"}
    for name in ("level", "sign"):
        np.testing.assert_allclose(torch.cat(parts[name], 1).numpy(), whole[name].numpy(), atol=1e-6, err_msg=name)


def trained(model, data: dict[str, np.ndarray]) -> GraphTrainer:
    trainer = GraphTrainer(model)
    trainer.run(graph_dataset(model, data, "arrays"), progress=False)
    return trainer


def test_graph_chunks_as_long_as_the_data_train_bit_identically_and_shorter_ones_do_not() -> None:
    data = arrays()
    plain, whole = trained(graph(), data), trained(graph(tbptt=11), data)
    short = trained(graph(tbptt=3), data)
    for name, value in plain.module.ir_state().items():
        np.testing.assert_array_equal(whole.module.ir_state()[name], value, err_msg=name)
    assert plain.history == [{**logs, "time": p["time"]} for logs, p in zip(whole.history, plain.history)]
    assert np.abs(short.module.ir_state()["layers.0.weight_hh"] - plain.module.ir_state()["layers.0.weight_hh"]).max() > 1e-3


def test_graph_logs_each_outputs_loss_over_its_real_steps_as_in_one_pass() -> None:
    data = arrays()
    still = ir.Optimizer("sgd", lr=0.0)  # the schema wants lr > 0; the loss alone is compared
    plain = trained(dataclasses.replace(graph(epochs=1), optimizer=still), data)
    short = trained(dataclasses.replace(graph(epochs=1, tbptt=3), optimizer=still), data)
    for key in ("loss", "level_loss", "sign_loss"):
        assert short.history[0][key] == pytest.approx(plain.history[0][key], rel=1e-6), key


def test_sequence_inputs_of_different_lengths_cannot_be_cut_together() -> None:
    inputs = {"a": {"shape": [None, 2]}, "b": {"shape": [None, 2]}}
    layers = [{"name": "ra", "type": "gru", "units": 3, "return_sequences": True, "input": "a"},
              {"name": "ya", "type": "dense", "units": 1},
              {"name": "rb", "type": "gru", "units": 3, "return_sequences": True, "input": "b"},
              {"name": "yb", "type": "dense", "units": 1}]
    model = model_from_mapping({"rnnc": 2, "name": "two", "inputs": inputs, "layers": layers,
                                "outputs": {"ya": {"loss": "mse"}, "yb": {"loss": "mse"}}, "optimizer": "adam",
                                "training": {"epochs": 1, "batch_size": 4, "tbptt": 2}})
    rng = np.random.default_rng(0)
    data = {"a": rng.normal(size=(4, 5, 2)), "b": rng.normal(size=(4, 7, 2)), "ya": np.zeros((4, 5, 1)), "yb": np.zeros((4, 7, 1))}
    with pytest.raises(DataError, match=r"^training.tbptt cuts every sequence input at the same steps, but they have a 5, b 7 steps"):
        trained(model, data)


REFUSED = [
    ("attention", [{"name": "enc", "type": "lstm", "units": 4, "return_sequences": True, "input": "series"},
                   {"name": "att", "type": "attention", "query": "enc", "value": "enc"},
                   {"name": "y", "type": "dense", "units": 1}],
     ["14:3: layers[1] (attention): training.tbptt (4) trains chunk by chunk, and attention reads the whole value "
      "sequence at every step, so it cannot stream: drop training.tbptt, or change this layer"]),
    ("initial_state", [{"name": "enc", "type": "lstm", "units": 4, "input": "series", "return_sequences": True},
                       {"name": "dec", "type": "lstm", "units": 4, "return_sequences": True, "initial_state": "enc.state"},
                       {"name": "y", "type": "dense", "units": 1}],
     ["18:18: layers[1].initial_state: training.tbptt (4) runs each sequence in chunks, and a layer started from another "
      "layer's state would start there again in every chunk: drop initial_state or training.tbptt"]),
    ("not_per_step", [{"name": "enc", "type": "gru", "units": 4, "input": "series"}, {"name": "y", "type": "dense", "units": 1}],
     ["9:3: layers[0] (gru): returns one vector per sequence, so output 'y' is not one per step and the chunks of "
      "training.tbptt (4) before the last would have nothing to learn from: set return_sequences: true, or drop "
      "training.tbptt"]),
]


@pytest.mark.parametrize(("name", "layers", "expected"), REFUSED, ids=[c[0] for c in REFUSED])
def test_graph_tbptt_is_refused_where_chunks_mean_nothing(tmp_path: Path, name: str, layers: list, expected: list[str]) -> None:
    spec = tmp_path / "graph.yaml"
    spec.write_text(yaml.safe_dump({"rnnc": 2, "name": "g", "inputs": {"series": {"shape": [None, 3]}}, "layers": layers,
                                    "outputs": {"y": {"loss": "mse"}}, "optimizer": "adam", "training": {"tbptt": 4}},
                                   sort_keys=False))
    with pytest.raises(SpecError) as caught:
        load_model(spec)
    assert caught.value.lines() == [f"{spec}:{line}" for line in expected]
