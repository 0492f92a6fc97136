"""Ray Tune's ``PopulationBasedTraining`` and ``PB2`` as a population-based search runs
them (search/pbt.py, docs/search.md), with two additions:

* **Rejected members are replaced and never copied.** A member whose interval was
  rejected (non-finite loss or embeddings, collapsed embeddings, or an error in its
  trial: result key ``rejected``) reports the worst fitness; :func:`guard_quantiles`
  puts every such member into the bottom quantile (it exploits a healthy member at the
  boundary) and none into the top one (no member copies it).
* **Resume.** ``Tuner.restore`` rebuilds the trials but not the scheduler's memory of
  them; :meth:`_Guarded.on_trial_add` puts each restored member's step, score and last
  result back and queues it as paused (as after a synchronous report), so a round cut
  by the kill completes at the same boundary: members that had reported it wait for
  the others, then copies are decided as usual. :meth:`_Guarded._exploit` makes Tune's
  experiment snapshot hold a copy's checkpoint together with its new λ.

Both run synchronously (``synch=True``): at each boundary every member has reported
the same step before any copies another.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from ray.tune.experiment import Trial
from ray.tune.schedulers import PopulationBasedTraining
from ray.tune.schedulers.pb2 import PB2

T = TypeVar("T")


def guard_quantiles(
    lower: Sequence[T], upper: Sequence[T], rejected: Sequence[T]
) -> tuple[list[T], list[T]]:
    """Tune's ``(lower, upper)`` quantiles with every rejected member moved to the
    bottom and none left at the top; ``([], [])`` (nobody copies) when no healthy
    member is at the top."""
    bad = list(dict.fromkeys(rejected))
    top = [t for t in upper if t not in bad]
    if not top:
        return [], []
    bottom = [*bad, *(t for t in lower if t not in bad and t not in top)]
    return bottom, top


def _finished(trial: Trial) -> bool:
    return trial.status in (Trial.TERMINATED, Trial.ERROR)


class _Guarded:
    """The additions of the module docstring, over a ``PopulationBasedTraining``."""

    _trial_state: dict[Trial, Any]
    _metric: Any
    _metric_op: Any
    _perturbation_interval: Any
    _next_perturbation_sync: Any

    def _quantiles(self) -> tuple[list[Trial], list[Trial]]:
        lower, upper = super()._quantiles()  # type: ignore[misc]
        rejected = [
            t
            for t, st in self._trial_state.items()
            if not _finished(t) and (st.last_result or {}).get("rejected")
        ]
        return guard_quantiles(lower, upper, rejected)

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        super().on_trial_add(tune_controller, trial)  # type: ignore[misc]
        last = trial.last_result or {}
        step = last.get("step")
        if isinstance(step, int | float) and step > 0 and self._metric in last:  # restored
            st = self._trial_state[trial]
            st.last_train_time = st.last_perturbation_time = step
            st.last_score = self._metric_op * float(last[self._metric])
            st.last_result = dict(last)
            if trial.status == Trial.PENDING:  # Tune starts every pending trial it can;
                trial.set_status(Trial.PAUSED)  # type: ignore[no-untyped-call]  # wait (sync)
        live = [st.last_train_time for t, st in self._trial_state.items() if not _finished(t)]
        if live:  # the next boundary every live member must reach before any copies
            self._next_perturbation_sync = min(live) + self._perturbation_interval

    def _exploit(self, tune_controller: Any, trial: Trial, trial_to_clone: Trial) -> None:
        super()._exploit(tune_controller, trial, trial_to_clone)  # type: ignore[misc]
        # Tune sets the copier's latest checkpoint inside its checkpoint manager, which
        # does not clear the trial's cached experiment-state JSON: without this the
        # snapshot keeps the new λ with the copier's own checkpoint, and a restore would
        # train the copier's weights with the source's explored λ
        trial.run_metadata.invalidate_cache()  # type: ignore[no-untyped-call]


class GuardedPBT(_Guarded, PopulationBasedTraining):
    """``PopulationBasedTraining`` with the additions of the module docstring."""


class GuardedPB2(_Guarded, PB2):
    """``PB2`` with the additions of the module docstring."""


def make_scheduler(strategy: str, pbt: Any, n_terms: int) -> Any:
    """The scheduler of ``strategy`` (``pbt`` | ``pb2``) for settings ``pbt``
    (:class:`search.pbt_settings.PBTSettings`): the time is the member's ``step``, the
    metric its ``fitness`` (higher is better), each λ explored within [0, 1]."""
    from ray import tune

    from elo.search.pbt_settings import clip_lambdas, lambda_key

    common: dict[str, Any] = dict(
        time_attr="step",
        metric="fitness",
        mode="max",
        perturbation_interval=pbt.interval,
        quantile_fraction=pbt.quantile,
        custom_explore_fn=clip_lambdas,
        synch=True,
    )
    if strategy == "pb2":
        bounds: dict[str, dict[Any, Any] | list[Any] | tuple[Any, ...]]
        bounds = {lambda_key(i): [0.0, 1.0] for i in range(n_terms)}
        return GuardedPB2(hyperparam_bounds=bounds, **common)
    return GuardedPBT(
        hyperparam_mutations={lambda_key(i): tune.uniform(0.0, 1.0) for i in range(n_terms)},
        resample_probability=pbt.resample_probability,
        perturbation_factors=tuple(pbt.perturbation_factors),
        **common,
    )
