"""Spectral label-free measures (RankMe effective rank, α-ReQ eigenspectrum decay) on
embeddings with a known spectrum, and the signed cross-modal aggregate: values,
invariances, collapse, configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from elo.errors import ConfigError
from elo.search.fitness import (
    FITNESSES,
    AlphaReqFitness,
    RankMeFitness,
    XModalFitness,
    alpha_decay,
    build_fitness,
    rankme,
    signed_geomean,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "fitness"


def _power_law(alpha: float, n: int = 4000, d: int = 32, seed: int = 0) -> np.ndarray:
    """N,D Gaussian rows whose covariance eigenvalues are k^-alpha, randomly rotated."""
    rng = np.random.default_rng(seed)
    k = np.arange(1, d + 1, dtype=np.float64)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return (rng.normal(size=(n, d)) * k ** (-alpha / 2)) @ q


def test_rankme_counts_equal_directions_and_ignores_scale_and_offset() -> None:
    rng = np.random.default_rng(0)
    for r in (1, 3, 8):  # r orthonormal directions of equal variance in 16 dimensions
        basis = np.linalg.qr(rng.normal(size=(16, 16)))[0][:r]
        x = rng.choice([-1.0, 1.0], size=(512, r)) @ basis  # exactly equal singular values
        assert rankme(x, "none") == pytest.approx(r, rel=0.02)
    iso = rng.normal(size=(2000, 16))
    assert 15.0 < rankme(iso) <= 16.0
    # RankMe is a property of directions: positive scaling and (centred) offsets change nothing
    assert rankme(7.5 * iso + 3.0) == pytest.approx(rankme(iso), rel=1e-9)


def test_rankme_fitness_orders_full_low_rank_collapsed() -> None:
    rng = np.random.default_rng(1)
    f = RankMeFitness()
    full = f.score(rng.normal(size=(300, 16)))
    low = f.score(rng.normal(size=(300, 3)) @ rng.normal(size=(3, 16)))
    collapsed = f.score(np.ones((300, 16)))
    assert full.value > 0.9 and low.value < 3.2 / 16
    assert full.value > low.value > collapsed.value == f.worst == 0.0
    assert "collapsed" in collapsed.details
    absolute = RankMeFitness(relative=False).score(rng.normal(size=(300, 16)))
    assert absolute.value == pytest.approx(16 * full.value, rel=0.02)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_alpha_decay_recovers_a_known_power_law(alpha: float) -> None:
    got, used = alpha_decay(_power_law(alpha), fit_range=(0.0, 0.5))
    assert got == pytest.approx(alpha, abs=0.12)
    assert used == 16


def test_alphareq_fitness_peaks_at_the_target_decay() -> None:
    f = AlphaReqFitness(target=1.0)
    vals = {a: f.score(_power_law(a, n=2000)).value for a in (0.3, 1.0, 2.5)}
    assert vals[1.0] > vals[0.3] and vals[1.0] > vals[2.5]
    assert vals[1.0] > -0.15  # |alpha - 1| small at the target
    collapsed = f.score(np.zeros((100, 8)))
    assert collapsed.value == f.worst == -10.0 and np.isfinite(collapsed.value)


def test_signed_geomean_is_continuous_and_keeps_the_sign() -> None:
    assert signed_geomean([0.04, 0.09]) == pytest.approx(0.06)
    assert signed_geomean([0.3, -0.02]) == -0.02  # below chance ranks below chance
    assert signed_geomean([0.3, 0.0]) == 0.0
    # continuous at 0 from both sides
    assert abs(signed_geomean([0.3, 1e-9])) < 1e-4 and abs(signed_geomean([0.3, -1e-9])) < 1e-8
    ranked = [signed_geomean([0.2, e]) for e in (-0.05, -0.01, 0.0, 0.01, 0.05)]
    assert ranked == sorted(ranked) and len(set(ranked)) == 5


def test_xmodal_default_is_signed_for_unrelated_embeddings() -> None:
    """Random embeddings are scored near 0 but not clipped to exactly 0: different
    unrelated encoders get different (possibly negative) values."""
    rng = np.random.default_rng(0)
    c = rng.integers(0, 8, 240)
    refs = {"audio": rng.normal(size=(240, 12)) + c[:, None], "flow": rng.normal(size=(240, 6))}
    f = XModalFitness(ks=(8,), seeds=1)
    vals = [f.score(rng.normal(size=(240, 16)), references=refs).value for _ in range(6)]
    assert max(abs(v) for v in vals) < 0.05
    assert len(set(vals)) == 6 and min(vals) < 0  # signed and continuous, not a block of 0s


def test_spectral_configs_build_and_bad_values_are_named() -> None:
    for name, cls in (("rankme", RankMeFitness), ("alphareq", AlphaReqFitness)):
        cfg = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
        assert isinstance(build_fitness(cfg, seed=2), cls)
        assert name in FITNESSES.list()
    with pytest.raises(ConfigError, match="fitness.prepar"):
        build_fitness({"kind": "rankme", "prepar": "none"})
    with pytest.raises(ConfigError, match="fit_range"):
        build_fitness({"kind": "alphareq", "fit_range": [0.6, 0.2]})
