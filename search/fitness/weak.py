"""The weakly-supervised fitness (:class:`WeakFitness`, ``weak``): probe accuracy of
the embeddings on a small labeled subset (ELo, Piergiovanni et al., CVPR 2020, §3.3's
alternative). Follows :class:`search.fitness.base.Fitness`.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from elo.errors import DataError
from elo.search.fitness.base import FITNESSES, FitnessResult, as_embeddings, collapse_reason


@FITNESSES.register()
@dataclass
class WeakFitness:
    """Weakly-supervised fitness (ELo §3.3's alternative): probe accuracy of the
    embeddings on a small labeled subset, by stratified ``folds``-fold cross-validation.

    ``score(embeddings, labels=...)``: ``labels`` (N ints, −1 = unlabeled, dropped).
    ``protocol`` ``"knn"`` (cosine kNN, ``knn_k`` neighbours) or ``"linear"``
    (standardized logistic regression with fixed ``C``: choosing C inside each fold
    would triple the cost). ``metric`` ``"balanced_accuracy"`` (default: robust on
    Zipf-sized label pools) or ``"top1"``. Range [0, 1]; ``worst`` = 0 for a
    collapsed representation.
    """

    name: ClassVar[str] = "weak"

    protocol: str = "knn"
    knn_k: int = 10
    C: float = 1.0
    folds: int = 3
    metric: str = "balanced_accuracy"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.protocol not in ("knn", "linear"):
            raise ValueError(f"protocol must be 'knn' or 'linear', got {self.protocol!r}")
        if self.metric not in ("balanced_accuracy", "top1"):
            raise ValueError(f"metric must be 'balanced_accuracy' or 'top1', got {self.metric!r}")
        if self.folds < 2:
            raise ValueError(f"folds must be >= 2, got {self.folds}")

    @property
    def worst(self) -> float:
        return 0.0

    def score(self, embeddings: Any, **context: Any) -> FitnessResult:
        from sklearn.model_selection import StratifiedKFold

        from elo.evaluation.probe import knn_probe, linear_probe

        t0 = time.perf_counter()
        if context.get("labels") is None:
            raise DataError("the weak fitness needs labels=...: a small labeled subset")
        x = as_embeddings(embeddings)
        y = np.asarray(
            context["labels"].detach().cpu()
            if hasattr(context["labels"], "detach")
            else context["labels"],
            dtype=np.int64,
        ).ravel()
        if len(y) != len(x):
            raise DataError(f"weak fitness: {len(x)} embeddings but {len(y)} labels")
        keep = y >= 0
        x, y = x[keep], y[keep]
        classes, counts = np.unique(y, return_counts=True)
        if len(classes) < 2:
            raise DataError("weak fitness needs labeled clips of at least 2 classes")
        details: dict[str, Any] = {"kind": self.name, "protocol": self.protocol, "n": len(x)}
        reason = collapse_reason(x)
        if reason is not None:
            details.update(collapsed=reason, seconds=time.perf_counter() - t0)
            return FitnessResult(self.worst, details)
        folds = int(min(self.folds, max(2, counts.max())))
        skf = StratifiedKFold(folds, shuffle=True, random_state=self.seed)
        n_cls = int(classes.max()) + 1
        scores = []
        with warnings.catch_warnings():  # a rare class with < folds members
            warnings.simplefilter("ignore", UserWarning)
            splits = list(skf.split(x, y))
        for tr, te in splits:
            if self.protocol == "knn":
                res = knn_probe(x[tr], y[tr], x[te], y[te], self.knn_k, num_classes=n_cls)
            else:
                res = linear_probe(
                    x[tr], y[tr], x[te], y[te], seed=self.seed, C=self.C, num_classes=n_cls
                )
            scores.append(res.balanced_accuracy if self.metric != "top1" else res.top1)
        value = float(np.mean(scores))
        details.update(
            metric=self.metric,
            folds=folds,
            fold_scores=scores,
            seconds=time.perf_counter() - t0,
        )
        return FitnessResult(value, details)
