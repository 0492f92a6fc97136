"""The Ray Tune ``Searcher`` of a search: a thin adapter over the Ray-free
:class:`search.generation.Evolution`, which does the bookkeeping (population, pending
and live individuals, replay, best, state); see that module for the contract.

Tune's side (``ray.tune.search.Searcher``): :meth:`EvolutionSearcher.suggest` returns
the next individual's config, ``None`` at the generation barrier and
``Searcher.FINISHED`` once every generation has been told (or the search halted);
:meth:`EvolutionSearcher.on_trial_complete` passes the trial's result on
(:meth:`EvolutionSearcher.on_trial_result` each rung's, search/fidelity.py); ``save`` /
``restore`` write and read the evolution's JSON state (Tune calls them through
``save_to_dir``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ray.tune.search import Searcher

from elo.search.generation import MAX_REQUEUES, Evolution, Listener
from elo.search.space import WeightSpace
from elo.search.strategies import Strategy

__all__ = ["MAX_REQUEUES", "EvolutionSearcher"]


class EvolutionSearcher(Searcher):
    """Generational Ray Tune searcher over a :class:`~search.strategies.Strategy`."""

    def __init__(
        self,
        strategy: Strategy,
        space: WeightSpace,
        generations: int,
        *,
        metric: str = "fitness",
        listener: Listener | None = None,
        rungs: int = 1,
    ) -> None:
        super().__init__(metric=metric, mode="max")
        self.evolution = Evolution(
            strategy, space, generations, metric=metric, listener=listener, rungs=rungs
        )

    # -- Ray Tune contract ----------------------------------------------------------
    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.evolution.stopped:
            return Searcher.FINISHED  # type: ignore[return-value]  # Tune's sentinel (a str)
        return self.evolution.ask(trial_id)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """A rung report (search/fidelity.py): kept for the evaluation's record."""
        self.evolution.progress(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        self.evolution.tell(trial_id, result, error)

    def on_trial_timeout(self, trial_id: str, seconds: float) -> None:
        """Called by :class:`search.failures.TrialTimeouts` (worst fitness, ``timeout``)."""
        self.evolution.timeout(trial_id, seconds)

    def get_state(self) -> dict[str, Any]:
        return self.evolution.get_state()

    def set_state(self, state: dict[str, Any]) -> None:
        self.evolution.set_state(state)

    def save(self, checkpoint_path: str) -> None:
        self.evolution.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.evolution.restore(checkpoint_path)

    # -- the evolution's view, for drivers and tests ------------------------------------
    def requeue_live(self) -> None:
        self.evolution.requeue_live()

    def replay(self, records: Iterable[Mapping[str, Any]]) -> int:
        return self.evolution.replay(records)

    @property
    def strategy(self) -> Strategy:
        return self.evolution.strategy

    @property
    def finished(self) -> bool:
        return self.evolution.finished

    @property
    def generation(self) -> int:
        return self.evolution.generation

    @property
    def best(self) -> dict[str, Any] | None:
        return self.evolution.best

    @property
    def halted(self) -> str | None:
        return self.evolution.halted
