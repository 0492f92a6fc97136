"""Cross-modal agreement and combined fitness: known answers on synthetic clusters,
the trivial-optimum guard, fixed reference statistics of raw flow / audio, configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from elo.errors import ConfigError, DataError
from elo.search.fitness import (
    CombinedFitness,
    XModalFitness,
    audio_statistics,
    build_fitness,
    flow_statistics,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "fitness"


def _clusters(labels: np.ndarray, dim: int, seed: int, noise: float = 0.05) -> np.ndarray:
    """Well-separated points: a random centre per label plus small noise (N,dim)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(int(labels.max()) + 1, dim)) * 3.0
    return centres[labels] + noise * rng.normal(size=(len(labels), dim))


def _zipf_labels(n: int = 240, k: int = 8) -> np.ndarray:
    p = 1.0 / np.arange(1, k + 1)
    counts = np.maximum(np.round(n * p / p.sum()).astype(int), 6)
    return np.repeat(np.arange(k), counts)


def _refs(c: np.ndarray) -> dict[str, np.ndarray]:
    return {"audio": _clusters(c, 12, seed=1), "flow": _clusters(c, 6, seed=2)}


def test_agreement_is_maximal_when_clusters_coincide() -> None:
    c = _zipf_labels()
    f = XModalFitness(ks=(8,), seeds=2)
    same = f.score(_clusters(c, 16, seed=3), references=_refs(c))
    assert same.value > 0.95
    assert same.details["ami_audio"] > 0.95 and same.details["ami_flow"] > 0.95
    # half the clusters merged: strictly less agreement than coinciding clusters
    coarse = f.score(_clusters(c // 2, 16, seed=3), references=_refs(c))
    assert coarse.value < same.value - 0.1
    nmi = XModalFitness(ks=(8,), seeds=1, metric="nmi").score(
        _clusters(c, 16, seed=3), references=_refs(c)
    )
    assert nmi.value > 0.95


def test_agreement_near_zero_for_independent_random_embeddings() -> None:
    c = _zipf_labels()
    rng = np.random.default_rng(0)
    r = XModalFitness(ks=(8, 16), seeds=2, aggregate="mean").score(
        rng.normal(size=(len(c), 16)), references=_refs(c)
    )
    assert abs(r.details["ami_audio"]) < 0.05 and abs(r.details["ami_flow"]) < 0.05
    assert abs(r.value) < 0.05


@pytest.mark.parametrize("kind", ["equal", "rank_one"])
def test_collapsed_embeddings_are_finite_and_worst(kind: str) -> None:
    c = _zipf_labels()
    x = np.ones((len(c), 8)) if kind == "equal" else np.outer(np.arange(len(c)), np.ones(8))
    f = XModalFitness(ks=(8,), seeds=1)
    r = f.score(x, references=_refs(c))
    assert np.isfinite(r.value) and r.value == f.worst and "collapsed" in r.details
    rand = f.score(np.random.default_rng(1).normal(size=(len(c), 8)), references=_refs(c))
    assert rand.value > f.worst + 0.5


def test_combined_orders_perfect_random_collapsed() -> None:
    c = _zipf_labels()
    f = CombinedFitness(ks=(8,), seeds=1, zipf_k=8, zipf_weight=0.3)
    perfect = f.score(_clusters(c, 16, seed=3), references=_refs(c))
    rand = f.score(np.random.default_rng(2).normal(size=(len(c), 16)), references=_refs(c))
    collapsed = f.score(np.zeros((len(c), 16)), references=_refs(c))
    assert perfect.value > rand.value > collapsed.value == f.worst
    assert perfect.details["kl"] < rand.details["kl"]  # Zipf-sized clusters fit the prior
    assert np.isfinite(collapsed.value)


def test_candidate_reference_has_a_trivial_optimum_fixed_reference_does_not() -> None:
    """RGB and the candidate's own audio/flow encoders agreeing on an arbitrary
    partition (what distilling an untrained teacher produces) scores ~1 against the
    candidate's own encoders and ~0 against fixed statistics of the clips."""
    c = _zipf_labels()
    z = np.random.default_rng(5).permutation(c)  # arbitrary, independent of the content
    copy = _clusters(z, 16, seed=7)
    own = {"audio_embeddings": copy + 0.01, "flow_embeddings": copy[:, :6]}
    cand = XModalFitness(ks=(8,), seeds=1, reference="candidate").score(copy, **own)
    fixed = XModalFitness(ks=(8,), seeds=1).score(copy, references=_refs(c))
    assert cand.value > 0.95
    assert fixed.value < 0.05


def test_two_references_reject_a_copy_of_one_modality() -> None:
    """An embedding that copies the audio statistics only (nothing in common with the
    flow) agrees with audio alone but not with both references."""
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 8, 240), rng.integers(0, 8, 240)  # independent factors
    refs = {"audio": _clusters(a, 12, seed=1), "flow": _clusters(b, 6, seed=2)}
    copy = refs["audio"].copy()
    only_audio = XModalFitness(ks=(8,), seeds=1, references=("audio",)).score(copy, references=refs)
    both = XModalFitness(ks=(8,), seeds=1).score(copy, references=refs)
    assert only_audio.value > 0.95
    assert both.value < 0.1


def test_flow_statistics_separate_motions() -> None:
    n, t, h, w = 4, 3, 16, 16
    flow = np.zeros((n, 2, t, h, w), np.float32)
    flow[0, 0] = 0.5  # rightward translation
    flow[1, 0] = -0.5  # leftward
    yy, xx = np.mgrid[0:h, 0:w] - (h - 1) / 2.0
    flow[2, 0], flow[2, 1] = -yy / h, xx / w  # counter-clockwise rotation (x right, y down)
    flow[3, 0], flow[3, 1] = yy / h, -xx / w  # the opposite rotation
    s = flow_statistics(flow)
    assert s.shape == (n, 8 + 7) and np.isfinite(s).all()
    mean_u = s[:, 8]
    assert mean_u[0] > 0.9 and mean_u[1] < -0.9
    curl = s[:, 10]
    assert curl[2] * curl[3] < 0 and abs(curl[2]) > 0.05
    still = flow_statistics(np.zeros((2, 2, t, h, w)))
    assert np.isfinite(still).all()


def test_audio_statistics_ignore_loudness_and_see_pitch() -> None:
    rng = np.random.default_rng(0)
    mel = rng.normal(size=(3, 1, 20, 10))
    mel[1] = mel[0] + 2.0  # same sound, louder
    mel[2, 0, 5] += 4.0  # energy in another band
    s = audio_statistics(mel)
    assert s.shape == (3, 40)
    np.testing.assert_allclose(s[0], s[1], atol=1e-9)
    assert np.abs(s[2] - s[0]).max() > 1.0


def test_raw_modalities_in_context_and_missing_reference() -> None:
    rng = np.random.default_rng(0)
    n = 40
    flow, audio = rng.normal(size=(n, 2, 3, 8, 8)), rng.normal(size=(n, 1, 16, 6))
    f = XModalFitness(ks=(4,), seeds=1)
    r = f.score(rng.normal(size=(n, 8)), flow=flow, audio=audio)
    assert np.isfinite(r.value) and {"ami_audio", "ami_flow"} <= set(r.details)
    with pytest.raises(DataError, match="audio"):
        f.score(rng.normal(size=(n, 8)), flow=flow)
    with pytest.raises(DataError, match="40 embeddings"):
        f.score(rng.normal(size=(n, 8)), flow=flow[:10], audio=audio[:10])


def test_configs_build_and_bad_keys_are_named() -> None:
    for name, cls in (("xmodal", XModalFitness), ("combined", CombinedFitness)):
        section = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
        f = build_fitness(section, seed=3)
        assert isinstance(f, cls) and f.seed == 3
    assert build_fitness({"kind": "xmodal", "ks": [8, 12]}).ks == (8, 12)
    with pytest.raises(ConfigError, match="fitness.kz"):
        build_fitness({"kind": "xmodal", "kz": [8]})
    with pytest.raises(ConfigError, match="aggregate"):
        build_fitness({"kind": "combined", "aggregate": "max"})
