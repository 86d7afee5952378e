"""cpu/loop_choice.py: whether a large one-direction LSTM or GRU trains in rnnc's loop is
measured once per machine and size, kept in the cache file and honoured by later
processes; the measurement draws nothing from torch's global generator; RNNC_LOOP
forces the answer; and training is deterministic for a seed whichever path is chosen."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from rnnc import ir
from rnnc.data import from_arrays
from rnnc.errors import UsageError
from rnnc_torch.cpu import loop_choice, policy, scans
from rnnc_torch.trainer import Trainer

from tiny_models import binary_data, tiny_model, write_spec


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(loop_choice.ENV, raising=False)
    loop_choice.forget()
    yield
    loop_choice.forget()


def _count_measurements(monkeypatch: pytest.MonkeyPatch, answer: str) -> list[tuple[str, int, int, int]]:
    calls: list[tuple[str, int, int, int]] = []

    def measure(mode: str, units: int, rows: int, threads: int) -> str:
        calls.append((mode, units, rows, threads))
        return answer

    monkeypatch.setattr(loop_choice, "_measure", measure)
    return calls


@pytest.mark.parametrize("answer", ["loop", "torch"])
def test_a_size_is_measured_once_kept_on_disk_and_honoured_by_a_later_process(monkeypatch: pytest.MonkeyPatch,
                                                                               answer: str) -> None:
    calls = _count_measurements(monkeypatch, answer)
    assert policy.loop_pays("LSTM", False, 128, 64, 1) is (answer == "loop")
    assert policy.loop_pays("LSTM", False, 128, 64, 1) is (answer == "loop")
    assert policy.loop_pays("LSTM", False, 128, 50, 1) is (answer == "loop")  # a last partial batch: its full batch's answer
    assert calls == [("LSTM", 128, 64, 1)]
    saved = json.loads(loop_choice.cache_path().read_text())
    assert saved["choices"] == {"LSTM units=128 batch=64 threads=1": answer}
    loop_choice.forget()  # a new process: the file decides
    monkeypatch.setattr(loop_choice, "_measure", lambda *a: pytest.fail("measured again"))
    assert policy.loop_pays("LSTM", False, 128, 64, 1) is (answer == "loop")


def test_each_kind_size_and_thread_count_is_its_own_question(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_measurements(monkeypatch, "loop")
    for mode, units, batch, threads in [("LSTM", 128, 64, 1), ("GRU", 128, 64, 1), ("LSTM", 256, 64, 1), ("LSTM", 128, 128, 1),
                                        ("LSTM", 128, 64, 2)]:
        policy.loop_pays(mode, False, units, batch, threads)
    assert len(calls) == 5


def test_small_layers_simple_rnns_and_bidirectional_layers_are_not_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_measurements(monkeypatch, "loop")
    assert not policy.loop_pays("LSTM", False, 64, 32)  # under MIN_PRODUCT_FLOPS: torch's kernel
    assert policy.loop_pays("RNN_TANH", False, 256, 256) and policy.loop_pays("LSTM", True, 256, 256)
    assert calls == []


def test_a_cache_file_with_an_unknown_value_is_measured_again(monkeypatch: pytest.MonkeyPatch) -> None:
    path = loop_choice.cache_path()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"choices": {"LSTM units=128 batch=64 threads=1": "fast"}}))
    calls = _count_measurements(monkeypatch, "torch")
    assert not policy.loop_pays("LSTM", False, 128, 64, 1)
    assert len(calls) == 1


def test_rnnc_loop_forces_the_answer_and_rejects_anything_else(monkeypatch: pytest.MonkeyPatch) -> None:
    _count_measurements(monkeypatch, "torch")
    monkeypatch.setenv("RNNC_LOOP", "loop")
    assert policy.loop_pays("LSTM", False, 128, 64, 1)
    monkeypatch.setenv("RNNC_LOOP", "Torch")
    assert not policy.loop_pays("GRU", False, 128, 64, 1)
    monkeypatch.setenv("RNNC_LOOP", "fastest")
    with pytest.raises(UsageError, match="RNNC_LOOP: expected auto, loop or torch, got 'fastest'"):
        policy.loop_pays("LSTM", False, 128, 64, 1)


def test_a_real_measurement_answers_draws_nothing_from_torchs_generator_and_keeps_the_threads() -> None:
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    threads = torch.get_num_threads()
    choice = loop_choice._measure("GRU", 32, 64, 1)
    assert choice in loop_choice.CHOICES
    assert torch.get_num_threads() == threads
    torch.testing.assert_close(torch.rand(3), expected, rtol=0, atol=0)


def test_a_sharded_model_asks_about_its_shards_on_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_measurements(monkeypatch, "loop")
    model = tiny_model([ir.LSTM(128), ir.Dense(1, "sigmoid")], shape=(12, 3), batch_size=128)
    policy.runs_a_time_loop(model, 64, 1)
    assert calls == [("LSTM", 128, 64, 1)]


@pytest.mark.parametrize("forced", ["loop", "torch"])
def test_training_is_deterministic_for_a_seed_on_either_path(monkeypatch: pytest.MonkeyPatch, forced: str) -> None:
    monkeypatch.setenv("RNNC_LOOP", forced)
    entered: list[int] = []
    original = scans.LSTMScan.forward
    monkeypatch.setattr(scans.LSTMScan, "forward", staticmethod(lambda *a: entered.append(1) or original(*a)))
    model = tiny_model([ir.LSTM(128), ir.Dense(1, "sigmoid")], shape=(6, 3), batch_size=64)
    x, y = binary_data(n=128, features=3)
    runs = []
    for _ in range(2):
        trainer = Trainer(model)
        trainer.run(from_arrays(model, x, y), progress=False)
        runs.append(([logs["loss"] for logs in trainer.history], {k: v.clone() for k, v in trainer.module.state_dict().items()}))
    assert bool(entered) is (forced == "loop")  # the forced path is the one that ran
    assert runs[0][0] == runs[1][0]
    for name, value in runs[0][1].items():
        torch.testing.assert_close(runs[1][1][name], value, rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("variable", ["RNNC_LOOP", "RNNC_GEMM"])
def test_rnnc_train_refuses_a_wrong_override_in_one_line_before_writing_anything(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str) -> None:
    from rnnc.cli import main

    monkeypatch.setenv(variable, "fastest")  # the tiny model's simple RNN would never ask: refused all the same
    assert main(["train", str(write_spec(tmp_path)), "-o", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{variable}: expected auto, {'loop' if variable == 'RNNC_LOOP' else 'torch'} or "
                   f"{'torch' if variable == 'RNNC_LOOP' else 'openblas'}, got 'fastest'"]
    assert not (tmp_path / "run").exists()
