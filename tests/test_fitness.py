"""Fitness functions: Zipf KL against hand-computed values, ordering of perfect /
random / collapsed representations, degenerate inputs, weak fitness."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import yaml

from elo.config import configs_dir
from elo.errors import ConfigError, DataError
from elo.search.fitness import (
    FITNESSES,
    NonFiniteEmbeddings,
    WeakFitness,
    ZipfFitness,
    build_fitness,
    collapse_reason,
    zipf_kl,
    zipf_pmf,
)

ZIPF_SIZES = [120, 60, 40, 30, 24, 20, 17, 15]  # ~ 120 / i: Zipf-sized classes, s = 1


def _separated(sizes: list[int], d: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Tight, far-apart blobs: a representation that separates the classes perfectly."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(len(sizes), d)) * 10.0
    y = np.concatenate([np.full(n, i) for i, n in enumerate(sizes)])
    return centers[y] + rng.normal(scale=0.1, size=(len(y), d)), y


def test_zipf_kl_hand_computed():
    # counts 6,3,2,1 (given unsorted): p = 1/2, 1/4, 1/6, 1/12; H_4 = 25/12 so
    # q = 12/25, 6/25, 4/25, 3/25.
    p = [1 / 2, 1 / 4, 1 / 6, 1 / 12]
    q = [12 / 25, 6 / 25, 4 / 25, 3 / 25]
    fwd = sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))
    rev = sum(b * math.log(b / a) for a, b in zip(p, q, strict=True))
    assert zipf_kl([2, 6, 1, 3], 1.0, smoothing=1e-12) == pytest.approx(fwd, rel=1e-9)
    assert zipf_kl([2, 6, 1, 3], 1.0, direction="zipf||clusters", smoothing=1e-12) == (
        pytest.approx(rev, rel=1e-9)
    )
    assert fwd == pytest.approx(0.0070332355, rel=1e-6)
    # exponent 2: q ∝ 1, 1/4, 1/9 -> H = 49/36
    q2 = np.array([36, 9, 4]) / 49
    assert np.allclose(zipf_pmf(3, 2.0), q2)
    assert zipf_kl([36, 9, 4], 2.0, smoothing=1e-12) == pytest.approx(0.0, abs=1e-9)


def test_empty_clusters_finite_in_both_directions():
    for direction in ("clusters||zipf", "zipf||clusters"):
        v = zipf_kl([10, 0, 0, 0], direction=direction)
        assert math.isfinite(v) and v > 0


def test_perfect_beats_random_far_beats_collapsed():
    x, _ = _separated(ZIPF_SIZES)
    f = ZipfFitness(k=8, seed=0)
    perfect = f.score(x)
    rand = f.score(np.random.default_rng(1).normal(size=x.shape))
    collapsed = f.score(np.tile(x[:1], (len(x), 1)))
    rank_one = f.score(np.outer(np.arange(len(x)), np.ones(16)))
    assert sorted(perfect.details["sizes"]) == sorted(map(float, ZIPF_SIZES))
    assert perfect.value > rand.value > collapsed.value
    assert perfect.value - collapsed.value > 5 * (perfect.value - rand.value)
    assert collapsed.value == rank_one.value == f.worst
    assert "collapse" in collapsed.details["collapsed"]
    assert "rank one" in rank_one.details["collapsed"]
    # worst is a true lower bound over every sorted histogram
    hist = np.random.default_rng(2).integers(0, 50, size=(200, 8))
    assert all(-f.kl(h) >= f.worst - 1e-12 for h in hist if h.sum())


def test_deterministic_for_seed_and_accepts_torch():
    x = np.random.default_rng(3).normal(size=(120, 8))
    f = ZipfFitness(k=6, seed=5)
    a, b = f.score(x), f.score(torch.from_numpy(x).float())
    assert a.value == pytest.approx(b.value) and a.details["sizes"] == b.details["sizes"]


def test_degenerate_inputs_are_finite():
    f = ZipfFitness(k=16)
    few = np.random.default_rng(0).normal(size=(5, 4))  # k > samples
    r = f.score(few)
    assert math.isfinite(r.value) and r.details["k_effective"] == 5
    assert r.details["sizes"][:5] == [1.0] * 5 and r.details["sizes"][5:] == [0.0] * 11
    three = np.repeat(np.eye(3), [30, 20, 10], axis=0)  # 3 distinct points, k = 16
    r2 = f.score(three)
    assert math.isfinite(r2.value) and r2.details["k_effective"] == 3
    assert r2.details["sizes"][:4] == [30.0, 20.0, 10.0, 0.0]
    two = np.repeat(np.eye(3)[:2], 20, axis=0)  # 2 distinct points lie on one line
    assert f.score(two).value == f.worst
    assert f.score(np.ones((1, 4))).value == f.worst  # a single embedding
    for d in ("clusters||zipf", "zipf||clusters"):
        g = ZipfFitness(k=16, direction=d)
        assert math.isfinite(g.worst) and g.score(few).value >= g.worst


def test_nan_and_inf_rows_raise_naming_the_cause():
    x = np.random.default_rng(0).normal(size=(20, 4))
    x[[3, 7]] = np.nan
    with pytest.raises(NonFiniteEmbeddings, match=r"2 of 20 .*NaN.*\[3, 7\].*diverged"):
        ZipfFitness(k=4).score(x)
    x[[3, 7]] = np.inf
    with pytest.raises(ValueError, match="inf"):
        WeakFitness().score(x, labels=np.arange(20) % 2)


def test_soft_assignment_matches_paper_form():
    x, _ = _separated(ZIPF_SIZES)
    hard = ZipfFitness(k=8).score(x)
    soft = ZipfFitness(k=8, assignment="soft").score(x)  # far blobs: softmax is ~one-hot
    assert soft.value == pytest.approx(hard.value, abs=1e-6)
    hot = ZipfFitness(k=8, assignment="soft", temperature=1e6).score(x)  # ~uniform mass
    assert np.allclose(hot.details["sizes"], len(x) / 8, rtol=1e-3)


def test_collapse_reason():
    rng = np.random.default_rng(0)
    assert collapse_reason(rng.normal(size=(50, 8))) is None
    assert "equal" in collapse_reason(np.full((50, 8), 3.0))
    line = np.outer(rng.normal(size=50), rng.normal(size=8)) + 5.0
    assert "rank one" in collapse_reason(line.astype(np.float32).astype(np.float64))


def test_build_from_config_files():
    cfg = yaml.safe_load((configs_dir() / "fitness" / "zipf.yaml").read_text())
    f = build_fitness(cfg, seed=3)
    assert isinstance(f, ZipfFitness) and (f.k, f.exponent, f.seed) == (cfg["k"], 1.0, 3)
    assert build_fitness({"kind": "zipf", "seed": 1}, seed=3).seed == 1
    weak = build_fitness(yaml.safe_load((configs_dir() / "fitness" / "weak.yaml").read_text()))
    assert isinstance(weak, WeakFitness)
    assert {"zipf", "weak"} <= set(FITNESSES.list())
    with pytest.raises(ConfigError, match="fitness.exponnent"):
        build_fitness({"kind": "zipf", "exponnent": 2})
    with pytest.raises(ConfigError, match="direction"):
        build_fitness({"kind": "zipf", "direction": "up"})
    with pytest.raises(ConfigError, match="unknown fitness"):
        build_fitness({"kind": "nope"})


def test_weak_fitness_orders_perfect_random_collapsed():
    x, y = _separated([30, 20, 12, 10], seed=4)
    for protocol in ("knn", "linear"):
        w = WeakFitness(protocol=protocol, folds=3)
        perfect = w.score(x, labels=y)
        rand = w.score(np.random.default_rng(0).normal(size=x.shape), labels=torch.from_numpy(y))
        coll = w.score(np.zeros_like(x), labels=y)
        assert perfect.value == 1.0
        assert rand.value < 0.6
        assert coll.value == w.worst == 0.0 and "collapse" in coll.details["collapsed"]
    labels = y.copy()
    labels[:5] = -1  # unlabeled rows are dropped, not errors
    assert WeakFitness().score(x, labels=labels).details["n"] == len(y) - 5
    with pytest.raises(DataError, match="labels"):
        WeakFitness().score(x)
    with pytest.raises(DataError, match="2 classes"):
        WeakFitness().score(x, labels=np.zeros(len(x), dtype=int))
