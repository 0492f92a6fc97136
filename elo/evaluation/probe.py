"""Frozen-feature probes: cosine kNN and a standardized logistic-regression probe.

Both take ``N,D`` features (numpy arrays or torch tensors) and integer labels, and
report top-1, top-5 (with at least 5 classes), balanced accuracy, per-class accuracy
and the confusion matrix as a :class:`ProbeResult`.

* :func:`knn_probe` / :func:`knn_accuracy`: weighted k-nearest neighbours on
  L2-normalized features, votes weighted by ``exp(cos / T)`` with ``T = 0.07``
  (Wu et al., "Unsupervised Feature Learning via Non-Parametric Instance
  Discrimination", CVPR 2018 — the kNN monitor used by solo-learn and lightly).
* :func:`linear_probe`: features standardized on the train split, multinomial
  logistic regression (scikit-learn, lbfgs), classes weighted inversely to their
  train frequency by default. When ``C`` is ``None`` it is chosen on
  a stratified held-out quarter of train by **balanced** accuracy, then refit on
  all of train: on Zipf-sized train pools, choosing C by plain accuracy collapses
  the probe to the majority class (docs/evaluation.md).

>>> import numpy as np
>>> x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
>>> y = np.array([0, 0, 1, 1])
>>> knn_accuracy(x, y, x, y, k=1)
1.0
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from elo.errors import DataError

#: C values tried when ``linear_probe(C=None)``; the inverse L2 strength of the probe.
C_GRID: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
KNN_TEMPERATURE = 0.07


@dataclass
class ProbeResult:
    """Scores of one probe on one test split (accuracies are fractions in [0, 1])."""

    top1: float
    top5: float | None  # None with fewer than 5 classes
    balanced_accuracy: float  # mean of per-class recall over classes present in test
    per_class: dict[int, float]  # class index -> recall; classes absent in test omitted
    confusion: np.ndarray  # K,K counts, rows = true class, columns = predicted
    predictions: np.ndarray  # N_test int64
    num_classes: int
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. chosen C, k

    def to_dict(self, class_names: Sequence[str] | None = None) -> dict[str, Any]:
        """JSON-ready summary; per-class keys are names when ``class_names`` is given."""

        def name(i: int) -> str:
            return class_names[i] if class_names is not None else str(i)

        return {
            "top1": self.top1,
            "top5": self.top5,
            "balanced_accuracy": self.balanced_accuracy,
            "per_class": {name(i): v for i, v in self.per_class.items()},
            "confusion": self.confusion.tolist(),
            "num_classes": self.num_classes,
            **self.extra,
        }


def as_numpy(x: Any, dtype: Any = np.float64) -> np.ndarray:
    """A numpy copy of an array-like or (CPU/GPU, grad or not) torch tensor."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _check(x: np.ndarray, y: np.ndarray, split: str) -> None:
    if x.ndim != 2:
        raise DataError(f"{split} features must be N,D; got shape {x.shape}")
    if len(x) != len(y):
        raise DataError(f"{split}: {len(x)} feature rows but {len(y)} labels")
    if len(x) == 0:
        raise DataError(f"{split} split is empty: the probe needs labeled clips")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)[:5].tolist()
        raise DataError(
            f"{split} features have {int(bad.sum())} rows with NaN/inf (first rows {rows}): "
            "the encoder produced non-finite embeddings (diverged training or bad input)"
        )
    if (y < 0).any():
        raise DataError(f"{split} has {int((y < 0).sum())} unlabeled clips (label -1)")


def average_over_groups(
    scores: np.ndarray, test_y: np.ndarray, groups: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Mean of the ``scores`` rows of each group (e.g. the clips x crops of one test
    video), groups in order of first appearance; returns ``(scores, labels, groups)``.
    Every row of a group must carry the same label."""
    if len(groups) != len(scores):
        raise DataError(f"{len(groups)} group ids for {len(scores)} score rows")
    names = list(dict.fromkeys(groups))
    pos = {g: i for i, g in enumerate(names)}
    idx = np.array([pos[g] for g in groups], dtype=np.int64)
    sums = np.zeros((len(names), scores.shape[1]))
    np.add.at(sums, idx, scores)
    counts = np.bincount(idx, minlength=len(names))[:, None]
    labels = np.full(len(names), -1, dtype=np.int64)
    labels[idx] = test_y
    if (labels[idx] != test_y).any():
        bad = names[int(idx[np.flatnonzero(labels[idx] != test_y)[0]])]
        raise DataError(f"test video {bad!r}: its clips carry different labels")
    return sums / counts, labels, names


def result_from_scores(
    scores: np.ndarray,
    classes: np.ndarray,
    test_y: np.ndarray,
    num_classes: int,
    groups: Sequence[str] | None = None,
) -> ProbeResult:
    """``scores`` N,len(classes) (higher = more likely) -> metrics over all classes.

    With ``groups`` (one id per row, e.g. the test video of each clip and crop), the
    scores of a group are averaged first and the metrics count groups, not rows: the
    field's multi-clip, multi-crop testing. ``extra["test_views"]`` is the row count."""
    n_views = len(scores)
    if groups is not None:
        scores, test_y, _ = average_over_groups(np.asarray(scores, np.float64), test_y, groups)
    order = np.argsort(-scores, axis=1, kind="stable")  # N,C
    ranked = classes[order]  # N,C class indices
    pred = ranked[:, 0].astype(np.int64)
    top1 = float((pred == test_y).mean())
    top5 = None
    if num_classes >= 5:
        top5 = float((ranked[:, :5] == test_y[:, None]).any(axis=1).mean())
    conf = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(conf, (test_y, pred), 1)
    per_class = {
        int(c): float(conf[c, c] / conf[c].sum()) for c in range(num_classes) if conf[c].sum()
    }
    balanced = float(np.mean(list(per_class.values())))
    res = ProbeResult(top1, top5, balanced, per_class, conf, pred, num_classes)
    if groups is not None:
        res.extra.update({"test_videos": len(test_y), "test_views": n_views})
    return res


def _num_classes(train_y: np.ndarray, test_y: np.ndarray, num_classes: int | None) -> int:
    n = int(max(train_y.max(), test_y.max())) + 1
    if num_classes is not None:
        if num_classes < n:
            raise DataError(f"label {n - 1} out of range for num_classes={num_classes}")
        n = num_classes
    return n


def knn_probe(
    train_x: Any,
    train_y: Any,
    test_x: Any,
    test_y: Any,
    k: int = 20,
    *,
    temperature: float = KNN_TEMPERATURE,
    num_classes: int | None = None,
    groups: Sequence[str] | None = None,
) -> ProbeResult:
    """Weighted cosine kNN (``k`` clamped to the train size); ties go to the lower class.
    With ``groups`` each row's votes are normalized to sum 1 and averaged per group
    (:func:`result_from_scores`)."""
    xtr, xte = as_numpy(train_x), as_numpy(test_x)
    ytr, yte = as_numpy(train_y, np.int64).ravel(), as_numpy(test_y, np.int64).ravel()
    _check(xtr, ytr, "train")
    _check(xte, yte, "test")
    n_cls = _num_classes(ytr, yte, num_classes)
    k = max(1, min(int(k), len(xtr)))
    xtr = xtr / np.maximum(np.linalg.norm(xtr, axis=1, keepdims=True), 1e-12)
    xte = xte / np.maximum(np.linalg.norm(xte, axis=1, keepdims=True), 1e-12)
    votes = np.zeros((len(xte), n_cls))
    for lo in range(0, len(xte), 1024):  # bounded memory: 1024 x N_train similarities
        sim = xte[lo : lo + 1024] @ xtr.T  # n,N_train
        idx = np.argsort(-sim, axis=1, kind="stable")[:, :k]  # n,k
        w = np.exp((np.take_along_axis(sim, idx, axis=1) - 1.0) / temperature)  # n,k
        rows = np.repeat(np.arange(len(idx)), k)
        np.add.at(votes[lo : lo + 1024], (rows, ytr[idx].ravel()), w.ravel())
    if groups is not None:
        votes = votes / np.maximum(votes.sum(axis=1, keepdims=True), 1e-300)
    res = result_from_scores(votes, np.arange(n_cls), yte, n_cls, groups)
    res.extra.update({"protocol": "knn", "k": k, "temperature": temperature})
    return res


def knn_accuracy(train_x: Any, train_y: Any, test_x: Any, test_y: Any, k: int = 20) -> float:
    """Top-1 accuracy of :func:`knn_probe`."""
    return knn_probe(train_x, train_y, test_x, test_y, k).top1


def _fit_logreg(
    x: np.ndarray, y: np.ndarray, C: float, seed: int, class_weight: str | None = None
) -> Any:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=C, max_iter=500, random_state=seed, class_weight=class_weight)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, y)
    return clf


def choose_c(
    x: np.ndarray,
    y: np.ndarray,
    *,
    seed: int = 0,
    grid: Sequence[float] = C_GRID,
    class_weight: str | None = None,
) -> tuple[float, dict[float, float]]:
    """C with the best balanced accuracy on a stratified held-out 25% of ``x``.

    Returns ``(C, {C: balanced accuracy})``. Ties go to the C closest to 1 (on a log
    scale; the smaller one when two are equally close). Falls back to ``C=1`` when some
    class has fewer than 2 samples or there is a single class (nothing can be held out
    fairly).
    """
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import train_test_split

    _, counts = np.unique(y, return_counts=True)
    if len(counts) < 2 or counts.min() < 2:
        return 1.0, {}
    n_val = max(len(counts), int(round(0.25 * len(y))))
    if len(y) - n_val < len(counts):
        return 1.0, {}
    xa, xb, ya, yb = train_test_split(x, y, test_size=n_val, stratify=y, random_state=seed)
    mean, std = xa.mean(0), xa.std(0) + 1e-8
    xa, xb = (xa - mean) / std, (xb - mean) / std
    scores = {}
    for c in grid:
        clf = _fit_logreg(xa, ya, c, seed, class_weight)
        scores[float(c)] = float(balanced_accuracy_score(yb, clf.predict(xb)))
    best = max(scores.values())
    tied = [c for c, s in scores.items() if s >= best - 1e-12]
    return min(tied, key=lambda c: (abs(np.log10(c)), c)), scores


def linear_probe(
    train_x: Any,
    train_y: Any,
    test_x: Any,
    test_y: Any,
    *,
    seed: int = 0,
    C: float | None = None,
    num_classes: int | None = None,
    class_weight: str | None = "balanced",
    groups: Sequence[str] | None = None,
) -> ProbeResult:
    """Standardized multinomial logistic regression; ``C=None`` picks C by balanced
    accuracy on held-out train (see module docstring). ``extra`` holds ``C`` and the
    validation scores of the grid.

    ``class_weight="balanced"`` (default) weights each class's loss by the inverse of
    its train frequency, so a Zipf-sized train pool is probed as if it were balanced
    (on the demo, pixel statistics: balanced accuracy 0.31 -> 0.38-0.40); ``None`` is
    plain logistic regression. With ``groups`` the class probabilities are averaged
    per group (:func:`result_from_scores`)."""
    xtr, xte = as_numpy(train_x), as_numpy(test_x)
    ytr, yte = as_numpy(train_y, np.int64).ravel(), as_numpy(test_y, np.int64).ravel()
    _check(xtr, ytr, "train")
    _check(xte, yte, "test")
    n_cls = _num_classes(ytr, yte, num_classes)
    mean, std = xtr.mean(0), xtr.std(0) + 1e-8
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    val: dict[float, float] = {}
    if C is None:
        C, val = choose_c(xtr, ytr, seed=seed, class_weight=class_weight)
    classes = np.unique(ytr)
    if len(classes) == 1:  # logistic regression needs 2 classes; predict the only one
        scores = np.ones((len(xte), 1))
    else:
        clf = _fit_logreg(xtr, ytr, C, seed, class_weight)
        scores = clf.predict_proba(xte)  # N,len(classes)
        classes = clf.classes_
    res = result_from_scores(scores, classes.astype(np.int64), yte, n_cls, groups)
    res.extra.update(
        {
            "protocol": "linear",
            "C": C,
            "class_weight": class_weight,
            "c_validation": {str(c): s for c, s in val.items()},
        }
    )
    return res
