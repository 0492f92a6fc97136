"""The generations of one search, with no Ray in sight: an ask/tell strategy run
individual by individual, generation by generation (:class:`Evolution`).
:class:`search.searcher.EvolutionSearcher` adapts it to Ray Tune's ``Searcher``
contract; this module must not import Ray (tests/test_searcher.py checks it).

* :meth:`Evolution.ask` hands out one individual of the current generation as a
  config ``{"generation", "index", "vector", "weights"}``; it returns ``None`` while
  the generation's last individuals are still running (the generation *barrier*);
  :attr:`Evolution.stopped` says when every generation has been told (or the search
  halted).
* :meth:`Evolution.tell` sets that individual's fitness; a trial that reported its
  own error (``trial_error``, see :mod:`search.failures`), a non-finite value or a
  timeout (:meth:`Evolution.timeout`) gets :data:`~search.strategies.WORST_FITNESS`, so
  a generation always completes. A trial that ended without reporting (one Tune
  removed while pending) or that Ray Tune gave up on (``error=True``: its worker or
  node failed after ``FailureConfig`` retries) is not an evaluation: it is handed out
  again, at most :data:`MAX_REQUEUES` times for infrastructure failures before the
  search stops (resumably). When the last individual of a generation is in, the
  strategy is told (fitness in index order, so completion order never changes the
  search).
* :meth:`Evolution.save` / ``restore`` (``get_state`` / ``set_state``) hold the strategy
  state, its RNG, population, pending / live individuals and results as JSON.

The strategy knows nothing of trials. A :class:`Listener` (the driver) hears of every
evaluation *before* it is applied and checkpoints after, so its JSON-lines log is never
older than the saved state; :meth:`Evolution.replay` catches a restored state up.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from elo.errors import ConfigError
from elo.rundir import atomic_write_json
from elo.search.fidelity import RUNG, outranks, rung_list, rung_summary, selection_values
from elo.search.space import WeightSpace
from elo.search.strategies import WORST_FITNESS, Strategy

log = logging.getLogger(__name__)
STATE_VERSION = 1
#: infrastructure failures of one individual (after Tune's retries) before the search stops
MAX_REQUEUES = 3


class Listener(Protocol):
    def evaluation(self, record: dict[str, Any]) -> None: ...

    def checkpoint(self, evolution: Evolution) -> None: ...

    def generation_done(self, summary: dict[str, Any]) -> None: ...


def summarize(generation: int, fitness: list[float | None]) -> dict[str, Any]:
    """Best / median of the finished evaluations of one generation (None = failed)."""
    ok = [f for f in fitness if f is not None]
    return {
        "generation": generation,
        "best": max(ok) if ok else None,
        "median": statistics.median(ok) if ok else None,
        "evaluated": len(fitness),
        "failed": len(fitness) - len(ok),
    }


class Evolution:
    """The generational bookkeeping of a search over a :class:`~search.strategies.Strategy`."""

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
        if generations < 1:
            raise ConfigError(f"search.generations is {generations}; use at least 1")
        if strategy.dim != space.dim:
            raise ValueError(f"strategy dim {strategy.dim} != space dim {space.dim}")
        self.strategy, self.space, self.generations = strategy, space, generations
        self.metric, self.listener = metric, listener
        self.generation = 0
        self.population: list[list[float]] | None = None
        self.pending: list[int] = []
        self.live: dict[str, int] = {}
        self.started: dict[str, float] = {}
        self.fitness: dict[int, float | None] = {}  # index -> fitness (None = failed)
        self.best: dict[str, Any] | None = None
        self.requeues: dict[int, int] = {}  # index -> infrastructure failures
        self.halted: str | None = None  # why the search stopped early (not saved)
        # multi-fidelity (search/fidelity.py): rungs per candidate, each live trial's
        # fitness per rung so far, and the rung each evaluated individual reached
        self.rungs = int(rungs)
        self.partial: dict[str, list[float | None]] = {}
        self.reached: dict[int, int] = {}

    # -- ask / tell -------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.generation >= self.generations

    @property
    def stopped(self) -> bool:
        """Every generation is told, or the search halted: nothing more to ask."""
        return self.finished or self.halted is not None

    def _ensure_population(self) -> list[list[float]]:
        if self.population is None:
            self.population = self.strategy.ask()
            self.pending = list(range(len(self.population)))
            self.fitness = {}
        return self.population

    def ask(self, trial_id: str) -> dict[str, Any] | None:
        """The next individual for ``trial_id``, or ``None`` at the barrier (and once
        :attr:`stopped`)."""
        if self.stopped:
            return None
        pop = self._ensure_population()
        if not self.pending:
            return None  # barrier: wait for this generation's running trials
        index = self.pending.pop(0)
        self.live[trial_id] = index
        self.started[trial_id] = time.time()
        return self.config_for(index, pop[index])

    def config_for(self, index: int, vector: list[float]) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "index": index,
            "vector": list(vector),
            "weights": self.space.weights(vector),
        }

    def progress(self, trial_id: str, result: Mapping[str, Any]) -> None:
        """An intermediate (rung) report of ``trial_id``: its fitness at that rung is
        kept for the evaluation's record (a restarted trial starts its list over)."""
        if self.rungs > 1 and trial_id in self.live and RUNG in result:
            self.partial[trial_id] = rung_list(self.partial.get(trial_id, []), result, self.metric)

    def tell(
        self, trial_id: str, result: Mapping[str, Any] | None = None, error: bool = False
    ) -> None:
        """``trial_id`` ended with ``result`` (``error``: Ray Tune gave up on it)."""
        if trial_id not in self.live:
            log.warning("ignoring completion of unknown trial %s", trial_id)
            return
        if result is not None and not error:
            self.progress(trial_id, result)  # the last result is its last rung's too
        else:
            self.partial.pop(trial_id, None)
        index = self.live.pop(trial_id)
        seconds = time.time() - self.started.pop(trial_id, time.time())
        if error:  # infrastructure: Ray Tune's retries are spent; not an evaluation
            self.requeues[index] = self.requeues.get(index, 0) + 1
            if self.requeues[index] >= MAX_REQUEUES:
                self.halted = (
                    f"individual {index} of generation {self.generation + 1} was lost to "
                    f"worker or node failures {self.requeues[index]} times (see errors.jsonl); "
                    "the search stopped: fix the cluster, then --resume"
                )
                log.error("%s", self.halted)
            else:
                log.warning("trial %s failed on the infrastructure; individual %d requeued",
                            trial_id, index)  # fmt: skip
            self.pending.insert(0, index)
            return
        if result is None or self.metric not in result:
            # Stopped before it reported (Tune removing a pending trial, Ctrl-C): not
            # an evaluation. It goes back to pending and is handed out again.
            log.info("trial %s ended without a result; individual %d requeued", trial_id, index)
            self.partial.pop(trial_id, None)
            self.pending.insert(0, index)
            return
        self._finish(
            self._record(index, trial_id, result, bool(result.get("trial_error")), seconds)
        )

    def timeout(self, trial_id: str, seconds: float) -> None:
        """The trial ran past ``search.trial_timeout_s``: an evaluation with the worst
        fitness (status ``timeout``); a later completion of it is ignored."""
        if trial_id not in self.live:
            return
        index = self.live.pop(trial_id)
        self.started.pop(trial_id, None)
        record = self._record(index, trial_id, {"seconds": seconds}, False, seconds)
        record.update(status="timeout", fitness=None, error=f"timed out after {seconds:.0f} s")
        self._finish(record)

    def _finish(self, record: dict[str, Any]) -> None:
        if self.listener is not None:
            self.listener.evaluation(record)
        self._apply(int(record["index"]), record["fitness"], int(record.get("rung", self.rungs)))
        if self.listener is not None:
            self.listener.checkpoint(self)

    def _record(
        self,
        index: int,
        trial_id: str,
        result: Mapping[str, Any] | None,
        error: bool,
        seconds: float,
    ) -> dict[str, Any]:
        assert self.population is not None
        result = dict(result or {})
        value = result.get(self.metric) if self.metric else None
        status = "ok"
        if error:
            status = "error"
        elif result.get("rejected"):
            status = str(result["rejected"])  # collapsed | nonfinite (search/fidelity.py)
        elif not isinstance(value, int | float) or not math.isfinite(value):
            status = "nonfinite"
        # The trainable reports {"fitness", "seconds", "metrics": {...}}; Tune flattens
        # nested dicts to "metrics/<name>" and adds its own keys, which are dropped.
        nested = result.get("metrics")
        metrics = dict(nested) if isinstance(nested, Mapping) else {}
        metrics.update({k[8:]: v for k, v in result.items() if k.startswith("metrics/")})
        metrics = {k: v for k, v in metrics.items() if _json_scalar(v)}
        nested = result.get("details")
        details = dict(nested) if isinstance(nested, Mapping) else {}
        details.update({k[8:]: v for k, v in result.items() if k.startswith("details/")})
        details = {k: v for k, v in details.items() if _json_list(v)}
        vector = self.population[index]
        record = {
            "generation": self.generation,
            "index": index,
            "trial_id": trial_id,
            "vector": list(vector),
            "weights": self.space.weights(vector),
            "fitness": float(value) if status == "ok" else None,  # type: ignore[arg-type]
            "status": status,
            "seconds": float(result.get("seconds", seconds)),
            "metrics": metrics,
            "details": details,
            "error": str(result.get("error_msg", "")) if error else "",
        }
        if self.rungs > 1:  # absent with one rung: the records of the paper's search
            per_rung = self.partial.pop(trial_id, [])
            record.update(rung=len(per_rung), rungs=per_rung)
        return record

    def _apply(self, index: int, fitness: float | None, rung: int | None = None) -> None:
        assert self.population is not None
        self.fitness[index] = fitness
        rung = self.rungs if rung is None else rung
        if self.rungs > 1:
            self.reached[index] = rung
        if fitness is not None and outranks(rung, fitness, self.best, self.rungs):
            vec = self.population[index]
            self.best = {
                "generation": self.generation,
                "index": index,
                "fitness": fitness,
                "vector": list(vec),
                "weights": self.space.weights(vec),
            }
            if self.rungs > 1:
                self.best["rung"] = rung
        if len(self.fitness) < len(self.population):
            return
        ordered = [self.fitness[i] for i in range(len(self.population))]
        values = [WORST_FITNESS if f is None else f for f in ordered]
        if self.rungs > 1:  # one value per candidate (search/fidelity.py, docs/search.md)
            reached = [self.reached.get(i, 0) for i in range(len(self.population))]
            values = selection_values(ordered, reached, self.rungs)
        self.strategy.tell(self.population, values)
        summary = summarize(self.generation, ordered)
        if self.rungs > 1:  # best by the same rule; how many reached each rung
            summary.update(rung_summary(ordered, reached, self.rungs))
        self.generation += 1
        self.population, self.pending, self.fitness = None, [], {}
        self.reached = {}
        if self.listener is not None:
            self.listener.generation_done(summary)

    # -- resume -----------------------------------------------------------------------
    def requeue_live(self) -> None:
        """Individuals that were running when the state was saved go back to pending
        (a new Ray session will not report them)."""
        back = sorted(self.live.values())
        self.live, self.started, self.partial = {}, {}, {}
        self.pending = sorted(set(self.pending) | set(back))

    def replay(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Apply finished evaluations from the run's JSON-lines log that the saved
        state does not hold yet; returns how many were applied. Each record must match
        the individual the strategy proposes at its (generation, index)."""
        applied = 0
        for rec in records:
            gen, index = int(rec["generation"]), int(rec["index"])
            if gen < self.generation or self.finished:
                continue
            if gen > self.generation:
                raise ConfigError(
                    f"run log has generation {gen} but the search state is at "
                    f"{self.generation}; the run directory is inconsistent"
                )
            pop = self._ensure_population()
            if index in self.fitness:
                continue
            if index >= len(pop) or not _same(pop[index], rec["vector"]):
                raise ConfigError(
                    f"run log entry (generation {gen}, index {index}) does not match the "
                    "strategy's proposal; resume with the same config and seed"
                )
            if index in self.pending:
                self.pending.remove(index)
            for tid, i in list(self.live.items()):
                if i == index:
                    del self.live[tid]
            fit = rec.get("fitness")
            ok = rec.get("status") == "ok" and isinstance(fit, int | float)
            rung = int(rec.get("rung", self.rungs))
            self._apply(index, float(fit) if ok else None, rung)  # type: ignore[arg-type]
            applied += 1
        return applied

    # -- state --------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "terms": list(self.space.terms),
            "mapping": self.space.mapping,
            "generations": self.generations,
            "generation": self.generation,
            "population": self.population,
            "pending": list(self.pending),
            "live": dict(self.live),
            "fitness": {str(k): v for k, v in self.fitness.items()},
            "best": self.best,
            "strategy": self.strategy.state(),
            **({"reached": {str(k): v for k, v in self.reached.items()}} if self.rungs > 1 else {}),
            # search.space: families (absent in the terms space: the paper's state file)
            **({"coordinates": list(self.space.names)} if self.space.space != "terms" else {}),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise ConfigError(f"search state version {state.get('version')} is not supported")
        if list(state["terms"]) != list(self.space.terms):
            raise ConfigError(
                "the saved search has different loss terms than this config; "
                "resume with the run's own config (config.yaml in the run directory)"
            )
        if list(state.get("coordinates", state["terms"])) != list(self.space.names):
            raise ConfigError(
                "the saved search evolved other coordinates than this config's search.space "
                f"({self.space.space}); resume with the run's own config (config.yaml)"
            )
        self.strategy.load_state(state["strategy"])
        self.generation = int(state["generation"])
        pop = state["population"]
        self.population = [[float(v) for v in x] for x in pop] if pop is not None else None
        self.pending = [int(i) for i in state["pending"]]
        self.live = {str(k): int(v) for k, v in state["live"].items()}
        self.started = {k: time.time() for k in self.live}
        self.fitness = {int(k): v for k, v in state["fitness"].items()}
        self.best = state.get("best")
        self.reached = {int(k): int(v) for k, v in (state.get("reached") or {}).items()}
        self.partial = {}

    def save(self, checkpoint_path: str) -> None:
        atomic_write_json(checkpoint_path, self.get_state())

    def restore(self, checkpoint_path: str) -> None:
        try:
            with open(checkpoint_path, encoding="utf-8") as fh:
                state = json.load(fh)
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read search state {checkpoint_path}: {exc}") from None
        self.set_state(state)


def _same(a: Iterable[float], b: Iterable[float]) -> bool:
    return all(
        abs(float(x) - float(y)) <= 1e-9 * max(1.0, abs(float(x)))
        for x, y in zip(a, b, strict=True)
    )


def _json_scalar(v: Any) -> bool:
    if isinstance(v, float):
        return math.isfinite(v)
    return isinstance(v, int | str | bool) or v is None


def _json_list(v: Any) -> bool:
    return isinstance(v, list | tuple) and all(
        isinstance(x, int | float) and math.isfinite(x) for x in v
    )
