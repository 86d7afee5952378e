"""LeanAdam and LeanAdamW (rnnc_torch/lean_adam.py) update parameters and state exactly
as torch's fused Adam and AdamW do, step after step, through a checkpoint round trip,
a learning-rate change and the cases that fall back to torch's own step."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from rnnc_torch.lean_adam import LeanAdam, LeanAdamW

SETTINGS = [
    (LeanAdam, torch.optim.Adam, {}),
    (LeanAdam, torch.optim.Adam, {"weight_decay": 0.01, "amsgrad": True, "eps": 1e-7}),
    (LeanAdamW, torch.optim.AdamW, {"weight_decay": 0.004, "betas": (0.8, 0.95)}),
]


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 2))


def _train(net: nn.Module, optimizer: torch.optim.Optimizer, steps: int, seed: int) -> list[float]:
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        x = torch.randn(16, 5, generator=generator)
        optimizer.zero_grad(set_to_none=True)
        loss = net(x).square().mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def _same(a: nn.Module, b: nn.Module, oa: torch.optim.Optimizer, ob: torch.optim.Optimizer) -> None:
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
        for key, value in oa.state[p].items():
            assert torch.equal(value, ob.state[q][key]), key


@pytest.mark.parametrize(("lean", "plain", "settings"), SETTINGS, ids=["adam", "adam-amsgrad-l2", "adamw"])
def test_the_short_step_is_torchs_fused_step_bit_for_bit(lean: type, plain: type, settings: dict) -> None:
    a, b = _net(), _net()
    oa = lean(a.parameters(), lr=0.01, fused=True, **settings)
    ob = plain(b.parameters(), lr=0.01, fused=True, **settings)
    assert _train(a, oa, 12, 1) == _train(b, ob, 12, 1)
    _same(a, b, oa, ob)
    for group in (*oa.param_groups, *ob.param_groups):  # the trainer sets each epoch's rate so
        group["lr"] = 0.003
    assert _train(a, oa, 5, 2) == _train(b, ob, 5, 2)
    _same(a, b, oa, ob)
    assert oa._lists is not None  # the short path ran


def test_a_checkpoint_round_trip_continues_exactly() -> None:
    a, b = _net(), _net()
    oa, ob = LeanAdam(a.parameters(), lr=0.01, fused=True), torch.optim.Adam(b.parameters(), lr=0.01, fused=True)
    _train(a, oa, 4, 1)
    _train(b, ob, 4, 1)
    saved_net, saved_opt = copy.deepcopy(a.state_dict()), copy.deepcopy(oa.state_dict())
    _train(a, oa, 3, 5)  # moves on, then is put back
    a.load_state_dict(saved_net)
    oa.load_state_dict(saved_opt)  # new state tensors: the short path must look them up again
    assert _train(a, oa, 6, 2) == _train(b, ob, 6, 2)
    _same(a, b, oa, ob)


def test_a_missing_gradient_and_hooks_take_torchs_step() -> None:
    a, b = _net(), _net()
    oa, ob = LeanAdam(a.parameters(), lr=0.01, fused=True), torch.optim.Adam(b.parameters(), lr=0.01, fused=True)
    _train(a, oa, 2, 1)
    _train(b, ob, 2, 1)
    for net, opt in ((a, oa), (b, ob)):  # the first layer frozen for a step: its gradient is None
        opt.zero_grad()
        net[2](torch.tanh(net[0](torch.ones(3, 5))).detach()).sum().backward()
        opt.step()
    _same(a, b, oa, ob)
    calls: list[str] = []
    handle = oa.register_step_post_hook(lambda *_: calls.append("post"))
    _train(a, oa, 2, 3)
    handle.remove()
    _train(b, ob, 2, 3)
    assert calls == ["post", "post"]
    _same(a, b, oa, ob)


def test_zero_grad_drops_or_zeroes_the_gradients() -> None:
    net = _net()
    opt = LeanAdam(net.parameters(), lr=0.01, fused=True)
    _train(net, opt, 1, 1)
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in net.parameters())
    opt.zero_grad()
    assert all(p.grad is None for p in net.parameters())
