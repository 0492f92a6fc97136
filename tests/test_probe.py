"""Probes: kNN and linear probe on known-answer features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from elo.errors import DataError
from elo.evaluation.probe import choose_c, knn_accuracy, knn_probe, linear_probe


def _blobs(n_per: list[int], d: int = 8, sep: float = 4.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(len(n_per), d)) * sep
    x = np.concatenate([c + rng.normal(size=(n, d)) for c, n in zip(centers, n_per, strict=True)])
    y = np.concatenate([np.full(n, i) for i, n in enumerate(n_per)])
    return x, y


def test_knn_exact_on_hand_example_and_accepts_torch():
    x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    y = torch.tensor([0, 0, 1, 1])
    q = np.array([[1.0, 0.05], [0.05, 1.0], [0.6, 0.4]])
    res = knn_probe(x, y, q, [0, 1, 0], k=1)
    assert res.predictions.tolist() == [0, 1, 0]
    assert res.top1 == 1.0 and res.top5 is None
    assert res.confusion.tolist() == [[2, 0], [0, 1]]
    # k larger than the train set is clamped, not an error
    assert knn_probe(x, y, q, [0, 1, 0], k=50).extra["k"] == 4


def test_knn_votes_weighted_by_similarity():
    # 1 very close neighbour of class 1 against 2 distant ones of class 0: exp(cos/T) wins
    tr = np.array([[1.0, 0.0], [0.0, 1.0], [0.05, 1.0]])
    assert knn_accuracy(tr, [1, 0, 0], [[1.0, 0.02]], [1], k=3) == 1.0


def test_linear_probe_separable_multiclass_and_metrics():
    x, y = _blobs([30] * 6, seed=1)
    xt, yt = _blobs([10] * 6, seed=1)  # same centers (same seed), fresh noise draws below
    xt = xt + np.random.default_rng(5).normal(scale=0.1, size=xt.shape)
    res = linear_probe(x, y, xt, yt, seed=0)
    assert res.top1 == 1.0 and res.top5 == 1.0 and res.balanced_accuracy == 1.0
    assert res.confusion.shape == (6, 6) and res.confusion.trace() == 60
    assert set(res.per_class) == set(range(6))
    assert res.extra["C"] in {1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0}
    d = res.to_dict([f"c{i}" for i in range(6)])
    assert d["per_class"]["c5"] == 1.0 and d["top1"] == 1.0


def test_chance_level_on_random_labels():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 4)), rng.integers(0, 4, 300)
    xt, yt = rng.normal(size=(400, 4)), rng.integers(0, 4, 400)
    assert abs(linear_probe(x, y, xt, yt).top1 - 0.25) < 0.1
    assert abs(knn_accuracy(x, y, xt, yt) - 0.25) < 0.1


def test_c_chosen_by_balanced_accuracy_on_zipf_pool():
    """A Zipf-sized pool with weak signal: the chosen C must not predict one class only."""
    rng = np.random.default_rng(0)
    sizes = [200, 100, 66, 50, 40, 33]
    y = np.concatenate([np.full(n, i) for i, n in enumerate(sizes)])
    signal = np.eye(6)[y] * 1.0
    x = np.concatenate([signal, rng.normal(size=(len(y), 10))], 1) + rng.normal(size=(len(y), 16))
    c, scores = choose_c(x, y, seed=0)
    assert scores and scores[c] == max(scores.values())
    yt = np.repeat(np.arange(6), 40)
    xt = np.concatenate([np.eye(6)[yt], rng.normal(size=(len(yt), 10))], 1) + rng.normal(
        size=(len(yt), 16)
    )
    res = linear_probe(x, y, xt, yt, seed=0)
    assert len(np.unique(res.predictions)) >= 4
    assert res.balanced_accuracy > 0.3  # chance is 1/6
    # class weighting (default) predicts the rare classes more often than plain LR
    plain = linear_probe(x, y, xt, yt, seed=0, class_weight=None)
    assert res.extra["class_weight"] == "balanced" and plain.extra["class_weight"] is None
    rare = lambda r: int(np.isin(r.predictions, [3, 4, 5]).sum())  # noqa: E731
    assert rare(res) > rare(plain)


def test_bad_inputs_name_the_cause():
    x = np.ones((4, 3))
    x[2, 1] = np.nan
    with pytest.raises(DataError, match="NaN"):
        linear_probe(x, [0, 1, 0, 1], np.ones((2, 3)), [0, 1])
    with pytest.raises(DataError, match="unlabeled"):
        knn_accuracy(np.ones((2, 3)), [0, -1], np.ones((2, 3)), [0, 1])
    with pytest.raises(DataError, match="empty"):
        knn_accuracy(np.ones((0, 3)), [], np.ones((2, 3)), [0, 1])


def test_deterministic_for_seed():
    x, y = _blobs([40, 20, 10], sep=0.8, seed=3)
    xt, yt = _blobs([10, 10, 10], sep=0.8, seed=4)
    a, b = linear_probe(x, y, xt, yt, seed=7), linear_probe(x, y, xt, yt, seed=7)
    assert a.extra["C"] == b.extra["C"]
    assert np.array_equal(a.predictions, b.predictions)
