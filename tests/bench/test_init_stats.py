"""bench/init_stats.py's intervals and p-values against references computed here: normal-theory
intervals on large synthetic samples, coverage of a known mean, an exact permutation test by
enumeration; and the verdict's orientation for metrics where lower is better."""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


stats = _load("init_stats")


def test_mean_interval_matches_the_normal_theory_interval_on_a_large_sample():
    values = np.random.default_rng(1).normal(5.0, 1.0, 400)
    low, high = stats.bootstrap(values)
    half = 1.96 * values.std(ddof=1) / math.sqrt(len(values))
    assert low < 5.0 < high
    assert abs(low - (values.mean() - half)) < 0.015 and abs(high - (values.mean() + half)) < 0.015


def test_mean_interval_covers_a_known_mean_about_95_percent_of_the_time_at_20_seeds():
    rng = np.random.default_rng(2)
    covered = 0
    for trial in range(300):
        low, high = stats.bootstrap(rng.normal(0.9, 0.02, 20), resamples=2000, seed=trial)
        covered += low <= 0.9 <= high
    # The percentile bootstrap runs a little under 95% at n = 20 (about 93%); 300 trials: sd 1.4 points.
    assert 0.88 <= covered / 300 <= 0.985


def test_median_interval_lies_between_order_statistics_and_collapses_on_constant_values():
    values = np.arange(1.0, 22.0)  # median 11
    low, high = stats.bootstrap(values, np.median)
    assert 6 <= low <= 11 <= high <= 16 and low < high
    assert stats.bootstrap(np.full(20, 0.93), np.median) == [0.93, 0.93]


def test_difference_interval_matches_welch_and_excludes_zero_for_a_real_gap():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.90, 0.01, 300), rng.normal(0.88, 0.01, 300)
    low, high = stats.bootstrap_difference(a, b)
    centre = a.mean() - b.mean()
    half = 1.96 * math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    assert 0 < low < 0.02 < high
    assert abs(low - (centre - half)) < 5e-4 and abs(high - (centre + half)) < 5e-4


def _exact_p(a: np.ndarray, b: np.ndarray) -> float:
    pooled, observed = np.concatenate([a, b]), abs(a.mean() - b.mean())
    far = total = 0
    for chosen in itertools.combinations(range(len(pooled)), len(a)):
        mask = np.zeros(len(pooled), bool)
        mask[list(chosen)] = True
        far += abs(pooled[mask].mean() - pooled[~mask].mean()) >= observed - 1e-12
        total += 1
    return far / total


def test_permutation_p_matches_the_exact_test_by_enumeration():
    a, b = np.array([0.91, 0.95, 0.93, 0.96, 0.94]), np.array([0.90, 0.92, 0.89, 0.94, 0.91])
    exact = _exact_p(a, b)  # 252 splits
    assert 0.02 < exact < 0.3
    assert abs(stats.permutation_p(a, b) - exact) < 0.015


def test_permutation_p_is_one_for_identical_groups_and_tiny_for_separated_ones():
    same = np.array([0.93, 0.95, 0.91, 0.97, 0.94, 0.92])
    assert stats.permutation_p(same, same.copy()) == 1.0
    rng = np.random.default_rng(4)
    high, low = rng.uniform(1.0, 1.1, 10), rng.uniform(0.0, 0.1, 10)
    assert stats.permutation_p(high, low) < 0.001  # exact: 2 / C(20, 10) = 1.1e-5


def test_resampling_is_seeded():
    values = np.random.default_rng(5).normal(0, 1, 20)
    assert stats.bootstrap(values) == stats.bootstrap(values)
    assert stats.permutation_p(values[:10], values[10:]) == stats.permutation_p(values[:10], values[10:])


@pytest.mark.parametrize(("interval", "higher", "expected"), [
    ([-0.03, -0.01], True, "worse"), ([0.01, 0.03], True, "better"), ([-0.01, 0.02], True, "no difference shown"),
    ([0.01, 0.03], False, "worse"), ([-0.03, -0.01], False, "better"), ([-0.01, 0.02], False, "no difference shown")])
def test_verdict_reads_the_interval_on_the_metrics_own_side(interval, higher, expected):
    assert stats.verdict(interval, higher) == expected


def test_versus_gives_the_differences_of_the_arms_and_the_plain_median_comparison():
    ours, hand = [0.10, 0.12, 0.11, 0.13, 0.12], [0.15, 0.14, 0.16, 0.15, 0.17]  # an error: lower is better
    result = stats.versus(ours, hand, higher_is_better=False)
    assert result["median_difference"] == pytest.approx(0.12 - 0.15)
    assert result["mean_difference"] == pytest.approx(np.mean(ours) - np.mean(hand))
    assert result["ours"]["median"] == pytest.approx(0.12) and result["hand"]["mean"] == pytest.approx(0.154)
    assert result["verdict"] == "better" and result["median_at_least_hand"] is True
    assert result["p"] == pytest.approx(_exact_p(np.array(ours), np.array(hand)), abs=0.01)
    flipped = stats.versus(hand, ours, higher_is_better=False)
    assert flipped["verdict"] == "worse" and flipped["median_at_least_hand"] is False


def test_the_hand_loops_shuffle_is_not_seeded_with_its_weight_seed():
    torch = pytest.importorskip("torch")
    sys.path.insert(0, str(BENCH))
    study = _load("init_study")
    for seed in (0, 100, 119):
        shuffle = study.shuffle_seed(seed)
        assert shuffle != seed and shuffle == study.shuffle_seed(seed)
        torch.manual_seed(seed)
        weights_stream = torch.randperm(500)
        assert not torch.equal(torch.randperm(500, generator=torch.Generator().manual_seed(shuffle)), weights_stream)


def test_a_twin_of_a_continuous_method_passes_the_median_criterion_half_the_time():
    pool = np.random.default_rng(3).normal(0.8, 0.02, 40)
    for higher in (True, False):
        twin = stats.twin_chances(pool, 20, higher, splits=2_000, resamples=1_000)
        assert abs(twin["median_at_least"] - 0.5) < 0.05  # 2,000 splits: a standard error of 0.011
        assert 0.005 < twin["worse"] < 0.08 and 0.005 < twin["better"] < 0.08  # a 95% interval's two tails


def test_a_twin_passes_on_ties_and_is_never_called_worse_when_every_seed_agrees():
    twin = stats.twin_chances(np.full(40, 0.9), 20, higher_is_better=True, splits=200, resamples=200)
    assert twin == {"median_at_least": 1.0, "worse": 0.0, "better": 0.0}
    few_values = np.array([0.9] * 30 + [0.8] * 5 + [1.0] * 5)  # a small test set's accuracies: medians tie
    for higher in (True, False):
        assert stats.twin_chances(few_values, 20, higher, splits=500, resamples=200)["median_at_least"] > 0.8


def test_a_twin_needs_two_disjoint_arms():
    with pytest.raises(ValueError, match="39 seeds cannot make two disjoint arms of 20"):
        stats.twin_chances(np.zeros(39), 20, True)


def _study(path: Path, seeds: list[int], values: list[float], task: str = "t") -> Path:
    study = {"machine": {"cpu": "cpu", "isa": ["avx2"], "torch": "2"}, "seeds": seeds, "tasks": {task: {
        "metric": "accuracy", "held_out": "test", "higher_is_better": True,
        "results": {"hand-written PyTorch": {"seeds": values}}}}}
    path.write_text(json.dumps(study))
    return path


def test_init_noise_pools_every_files_seeds_and_renders_its_table(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(4)
    first = _study(tmp_path / "a.json", list(range(20)), list(rng.normal(0.9, 0.01, 20)))
    late = list(rng.normal(0.9, 0.01, 20))
    second = _study(tmp_path / "b.json", [*range(100, 120)], late)
    again = _study(tmp_path / "c.json", [100, 101], late[:2])  # seeds run twice: the same values
    out = tmp_path / "noise.json"
    noise = _load("init_noise")
    monkeypatch.setattr(sys, "argv", ["init_noise", "--studies", str(first), str(second), str(again),
                                      "--splits", "300", "--out", str(out)])
    assert noise.main() == 0
    result = json.loads(out.read_text())
    task = result["tasks"]["t"]
    assert task["seeds"] == 40 and task["seed_ranges"] == "0-19, 100-119" and task["files"] == ["a.json", "b.json", "c.json"]
    assert 0.35 < task["twin"]["median_at_least"] < 0.65 and result["all_pass"] == task["twin"]["median_at_least"]
    assert task["direct"]["verdict"] in ("worse", "better", "no difference shown")
    rendered = _load("render_init_noise").table(result)
    assert "| t | accuracy on test, higher is better | 40 (0-19, 100-119) |" in rendered
    assert "1 in" in rendered and not list(tmp_path.glob("*.tmp"))


def test_init_noise_refuses_a_seed_whose_files_disagree(tmp_path, monkeypatch):
    first = _study(tmp_path / "a.json", [0, 1], [0.9, 0.8])
    second = _study(tmp_path / "b.json", [1, 2], [0.7, 0.8])
    noise = _load("init_noise")
    monkeypatch.setattr(sys, "argv", ["init_noise", "--studies", str(first), str(second), "--out", str(tmp_path / "n.json")])
    with pytest.raises(SystemExit, match="t seed 1 gave 0.7, another file 0.8"):
        noise.main()
    assert not (tmp_path / "n.json").exists()


def test_init_noise_names_a_missing_results_file_and_exits_2(tmp_path, monkeypatch, capsys):
    noise = _load("init_noise")
    monkeypatch.setattr(sys, "argv", ["init_noise", "--studies", str(tmp_path / "none.json"), "--out", str(tmp_path / "n.json")])
    assert noise.main() == 2
    assert capsys.readouterr().err.strip() == f"init_noise: no such results file: {tmp_path / 'none.json'}"


def test_init_embedding_draws_each_arms_embedding_and_gives_the_shipped_rule_back():
    pytest.importorskip("torch")
    embeddings_drawn = _load("init_embedding").embeddings_drawn
    from rnnc_torch.model import build_module

    from rnnc.spec import model_from_mapping

    spec = {"rnnc": 1, "name": "emb", "input": {"shape": [None], "dtype": "int64"},
            "layers": [{"type": "embedding", "vocab_size": 400, "dim": 25}, {"type": "gru", "units": 8},
                       {"type": "dense", "units": 2, "activation": "softmax"}],
            "loss": "sparse_categorical_crossentropy", "optimizer": "adam", "training": {"seed": 3}}
    model = model_from_mapping(spec, "emb.yaml")

    def embedding() -> np.ndarray:
        return build_module(model).ir_state()["layers.0.weight"].astype(np.float64)

    for arm, std in [("normal:1", 1.0), ("normal:dim", 0.2), ("normal:0.5", 0.5)]:
        with embeddings_drawn(arm):
            drawn = embedding()
        assert abs(drawn.std() - std) < 0.05 * std, arm
    with embeddings_drawn("uniform:0.3"):
        assert 0.29 < np.abs(embedding()).max() <= 0.3
    with pytest.raises(RuntimeError), embeddings_drawn("normal:1"):
        raise RuntimeError
    assert np.abs(embedding()).max() <= 0.05  # the default's keras +-0.05 again


def test_init_embedding_refuses_a_bad_arm_with_exit_2(capsys):
    pytest.importorskip("torch")
    main = _load("init_embedding").main
    for arms in ("normal:wide", "uniform:dim", "normal:0", "cauchy:1"):
        assert main(["--arms", arms, "--tasks", "lang_id"]) == 2
        assert f"bad arm '{arms}'" in capsys.readouterr().err
    assert main(["--arms", "normal:1", "--tasks", "lang_idd"]) == 2
    assert "unknown task(s) lang_idd" in capsys.readouterr().err
