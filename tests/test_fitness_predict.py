"""Cross-modal predictability (xpredict): cross-validated ridge R² of fixed audio / flow
statistics from the embeddings; known answers, sign, collapse, the one-modality copy."""

from __future__ import annotations

import numpy as np
import pytest

from elo.errors import ConfigError, DataError
from elo.search.fitness import XPredictFitness, build_fitness, ridge_r2


def _refs(n: int = 200, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Independent audio and flow factors (N,4 each) and their statistics."""
    rng = np.random.default_rng(seed)
    fa, ff = rng.normal(size=(n, 4)), rng.normal(size=(n, 4))
    refs = {"audio": fa @ rng.normal(size=(4, 10)), "flow": ff @ rng.normal(size=(4, 12))}
    return refs, np.concatenate([fa, ff], axis=1)


def test_embeddings_that_encode_both_references_score_near_one() -> None:
    refs, factors = _refs()
    rng = np.random.default_rng(1)
    x = factors @ rng.normal(size=(8, 32)) + 0.01 * rng.normal(size=(200, 32))
    r = XPredictFitness(alphas=(1e-4,)).score(x, references=refs)
    assert r.value > 0.95 and r.details["r2_audio"] > 0.95 and r.details["r2_flow"] > 0.95


def test_unrelated_embeddings_score_near_zero_and_signed() -> None:
    refs, _ = _refs()
    rng = np.random.default_rng(2)
    f = XPredictFitness()
    vals = [f.score(rng.normal(size=(200, 32)), references=refs).value for _ in range(4)]
    assert max(abs(v) for v in vals) < 0.03
    assert max(vals) < 0  # no better than predicting the mean: negative, not clipped to 0


def test_more_information_scores_higher() -> None:
    """Graded: embeddings holding 1, 2 or 4 of the 4 flow factors (and all audio ones)."""
    refs, factors = _refs()
    rng = np.random.default_rng(3)
    f = XPredictFitness(references=("flow",))
    vals = []
    for k in (1, 2, 4):
        x = np.concatenate([factors[:, 4 : 4 + k], rng.normal(size=(200, 8))], axis=1)
        vals.append(f.score(x, references=refs).value)
    assert vals[0] < vals[1] < vals[2]


def test_copy_of_one_modality_passes_mean_half_and_min_not() -> None:
    refs, factors = _refs()
    copy = factors[:, :4]  # the audio factors only
    mean = XPredictFitness(alphas=(1e-4,)).score(copy, references=refs)
    low = XPredictFitness(alphas=(1e-4,), aggregate="min").score(copy, references=refs)
    assert mean.details["r2_audio"] > 0.95 and abs(mean.details["r2_flow"]) < 0.1
    assert 0.4 < mean.value < 0.55 and low.value < 0.05


def test_collapsed_missing_reference_and_config() -> None:
    refs, _ = _refs()
    f = XPredictFitness()
    collapsed = f.score(np.ones((200, 8)), references=refs)
    assert collapsed.value == f.worst == -1.0 and "collapsed" in collapsed.details
    with pytest.raises(DataError, match="flow"):
        f.score(np.random.default_rng(0).normal(size=(200, 8)), references={"audio": refs["audio"]})
    assert isinstance(build_fitness({"kind": "xpredict", "alphas": [0.5]}), XPredictFitness)
    with pytest.raises(ConfigError, match="aggregate"):
        build_fitness({"kind": "xpredict", "aggregate": "max"})
    # raw flow clips in the context: fixed statistics computed from them
    flow = np.random.default_rng(4).normal(size=(40, 2, 3, 8, 8)).astype(np.float32)
    r = XPredictFitness(references=("flow",)).score(
        np.random.default_rng(5).normal(size=(40, 6)), flow=flow
    )
    assert np.isfinite(r.value) and "r2_flow" in r.details


def test_ridge_r2_recovers_a_partial_linear_signal() -> None:
    """y = x·w + noise with signal variance 1 and noise variance 1: R² ≈ 0.5."""
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2000, 4))
    y = (x @ np.array([1.0, 0.0, 0.0, 0.0]))[:, None] + rng.normal(size=(2000, 1))
    assert ridge_r2(x, y, alphas=(1e-4,)) == pytest.approx(0.5, abs=0.05)
