"""Cross-modal agreement with ELo's Zipf prior as a penalty (:class:`CombinedFitness`,
``combined``): :class:`search.fitness.xmodal.XModalFitness` minus a weighted
:class:`search.fitness.zipf.ZipfFitness` KL. Follows :class:`search.fitness.base.Fitness`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

from elo.search.fitness.base import FITNESSES, FitnessResult, as_embeddings
from elo.search.fitness.xmodal import AgreementOptions, XModalFitness
from elo.search.fitness.zipf import ZipfFitness


@dataclass
class _CombinedWeights:
    """The weights of :class:`CombinedFitness`'s two parts: a base class of their own
    so that they stay its first fields, before the :class:`AgreementOptions`."""

    agreement_weight: float = 1.0
    zipf_weight: float = 0.1


@FITNESSES.register()
@dataclass
class CombinedFitness(AgreementOptions, _CombinedWeights):
    """Cross-modal agreement with a Zipf-prior penalty:
    ``agreement_weight · xmodal − zipf_weight · KL(cluster sizes ‖ Zipf)``.

    The agreement term is :class:`XModalFitness` (``references``, ``reference``,
    ``ks``, ``seeds``, ``metric``, ``aggregate``, ``normalize``), the penalty is the KL
    of :class:`ZipfFitness` (``zipf_k``, ``zipf_exponent``, ``zipf_direction``): ELo's
    distribution prior kept as a regularizer rather than the whole fitness. A collapsed
    representation gets ``worst`` (both parts at their worst).
    """

    name: ClassVar[str] = "combined"

    # fields: agreement_weight, zipf_weight (_CombinedWeights), the AgreementOptions, then
    zipf_k: int = 16
    zipf_exponent: float = 1.0
    zipf_direction: str = "clusters||zipf"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.agreement_weight < 0 or self.zipf_weight < 0:
            raise ValueError("agreement_weight and zipf_weight must be >= 0")
        self.xmodal = XModalFitness(**self.agreement_options(), seed=self.seed)
        self.zipf = ZipfFitness(
            k=self.zipf_k,
            exponent=self.zipf_exponent,
            direction=self.zipf_direction,
            seed=self.seed,
        )

    @property
    def worst(self) -> float:
        return self.agreement_weight * self.xmodal.worst + self.zipf_weight * self.zipf.worst

    def score(self, embeddings: Any, **context: Any) -> FitnessResult:
        t0 = time.perf_counter()
        x = as_embeddings(embeddings)
        a = self.xmodal.score(x, **context)
        details: dict[str, Any] = {"kind": self.name, "n": len(x)}
        if "collapsed" in a.details:
            details.update(collapsed=a.details["collapsed"], seconds=time.perf_counter() - t0)
            return FitnessResult(self.worst, details)
        z = self.zipf.score(x)
        kl = float(z.details.get("kl", -z.value))
        value = self.agreement_weight * a.value - self.zipf_weight * kl
        details.update(
            agreement=a.value,
            kl=kl,
            **{k: v for k, v in a.details.items() if k.startswith(self.metric)},
            seconds=time.perf_counter() - t0,
        )
        return FitnessResult(max(value, self.worst), details)
