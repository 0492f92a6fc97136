"""Evolution strategies over the weight vector: plain ask/tell objects.

* :class:`CMAES` wraps DEAP's ``cma.Strategy`` (Hansen & Ostermeier 2001, "Completely
  Derandomized Self-Adaptation in Evolution Strategies"), the strategy ELo uses
  (Piergiovanni et al., CVPR 2020).
* :class:`Genetic` is a (μ + λ) genetic algorithm from DEAP's operators: tournament
  selection, blend crossover and Gaussian mutation; parents survive by fitness, so
  elites are never re-evaluated.

Fitness is *higher is better*. A strategy knows nothing of Ray or of trials: ``ask()``
returns one generation of vectors, ``tell(vectors, fitness)`` consumes its fitness.

No global DEAP ``creator`` classes are made, and DEAP's draws from the *global* numpy
and ``random`` generators happen inside :meth:`_Rng.active`, which swaps in this
strategy's own seeded states and restores the caller's afterwards. ``state()`` is
plain JSON (no pickle), so a run directory can be trusted to load.

>>> s = make_strategy("cma", dim=3, population=6, seed=1)
>>> pop = s.ask()
>>> len(pop), len(pop[0])
(6, 3)
>>> s.tell(pop, [-sum(v * v for v in x) for x in pop])
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from elo.errors import ConfigError

if TYPE_CHECKING:
    from elo.search.settings import SearchSettings
    from elo.search.space import WeightSpace

Vector = list[float]
#: The fitness to :meth:`Strategy.tell` for a failed or non-finite evaluation: it ranks
#: below every real value (fitness functions stay far above it, e.g. -KL > -1e6).
WORST_FITNESS = -1e9


class _Rng:
    """One strategy's numpy + python RNG states, swapped in around DEAP calls."""

    def __init__(self, seed: int) -> None:
        import numpy as np

        self.np_state: Any = np.random.RandomState(seed % 2**32).get_state()
        self.py_state: Any = random.Random(seed).getstate()

    @contextmanager
    def active(self) -> Iterator[None]:
        import numpy as np

        saved_np, saved_py = np.random.get_state(), random.getstate()
        np.random.set_state(self.np_state)
        random.setstate(self.py_state)
        try:
            yield
        finally:
            self.np_state, self.py_state = np.random.get_state(), random.getstate()
            np.random.set_state(saved_np)
            random.setstate(saved_py)

    def to_json(self) -> dict[str, Any]:
        name, keys, pos, has_gauss, cached = self.np_state
        version, internal, gauss_next = self.py_state
        return {
            "numpy": [name, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)],
            "python": [version, list(internal), gauss_next],
        }

    def load_json(self, doc: dict[str, Any]) -> None:
        import numpy as np

        name, keys, pos, has_gauss, cached = doc["numpy"]
        self.np_state = (name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached)
        version, internal, gauss_next = doc["python"]
        self.py_state = (version, tuple(internal), gauss_next)


@functools.cache
def _deap_types() -> tuple[type, type]:
    """A maximising Fitness and an Individual, built locally (not in deap.creator)."""
    from deap import base

    class MaxFitness(base.Fitness):  # type: ignore[misc]  # DEAP is untyped
        weights = (1.0,)

    class Individual(list):  # type: ignore[type-arg]
        def __init__(self, values: Sequence[float], fitness: float | None = None) -> None:
            super().__init__(float(v) for v in values)
            self.fitness = MaxFitness()
            if fitness is not None:
                self.fitness.values = (float(fitness),)

    return MaxFitness, Individual


def _individual(x: Sequence[float], fitness: float | None = None) -> Any:
    return _deap_types()[1](x, fitness)


def _check_fitness(xs: Sequence[Sequence[float]], fitness: Sequence[float], n: int) -> None:
    if len(xs) != n or len(fitness) != n:
        raise ValueError(
            f"tell() needs {n} vectors and fitness values, got {len(xs)}/{len(fitness)}"
        )
    bad = [f for f in fitness if not math.isfinite(f)]
    if bad:
        raise ValueError(f"fitness must be finite (map failures to the worst value), got {bad[0]}")


class Strategy:
    """Common parts: population size, seeded RNG, seed points, generation counter."""

    name = ""

    def __init__(
        self, dim: int, population: int, *, seed: int, seed_points: Sequence[Sequence[float]] = ()
    ) -> None:
        if dim < 1:
            raise ConfigError("the search space is empty: the objective has no terms")
        if population < 2:
            raise ConfigError(f"search.population is {population}; use at least 2")
        self.dim, self.population = dim, population
        self.rng = _Rng(seed)
        self.seed_points = [[float(v) for v in p] for p in seed_points][:population]
        for p in self.seed_points:
            if len(p) != dim:
                raise ValueError(f"seed point has {len(p)} entries, the space has {dim}")
        self.generation = 0

    def ask(self) -> list[Vector]:
        """The next generation: ``population`` vectors (call once, then :meth:`tell`)."""
        with self.rng.active():
            pop = self._sample()
        if self.generation == 0 and self.seed_points:
            pop[: len(self.seed_points)] = [list(p) for p in self.seed_points]
        return pop

    def tell(self, xs: Sequence[Sequence[float]], fitness: Sequence[float]) -> None:
        """Consume the fitness (higher is better, finite) of the asked generation."""
        _check_fitness(xs, fitness, self.population)
        with self.rng.active():
            self._update(xs, fitness)
        self.generation += 1

    def _sample(self) -> list[Vector]:  # pragma: no cover
        raise NotImplementedError

    def _update(
        self, xs: Sequence[Sequence[float]], fitness: Sequence[float]
    ) -> None:  # pragma: no cover
        raise NotImplementedError

    # -- JSON state ---------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"name": self.name, "generation": self.generation, "rng": self.rng.to_json()}

    def load_state(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ConfigError(
                f"saved search state is for strategy {state.get('name')!r}, not {self.name!r}"
            )
        self.generation = int(state["generation"])
        self.rng.load_json(state["rng"])


class CMAES(Strategy):
    """DEAP CMA-ES with a seeded RNG; ``centroid`` is the initial mean, ``sigma`` its step."""

    name = "cma"
    _ARRAYS = ("centroid", "pc", "ps", "C", "diagD", "B", "BD")

    def __init__(
        self,
        dim: int,
        population: int,
        *,
        sigma: float,
        centroid: Sequence[float] | None = None,
        bounds: tuple[float, float] | None = None,
        seed: int = 0,
        seed_points: Sequence[Sequence[float]] = (),
    ) -> None:
        super().__init__(dim, population, seed=seed, seed_points=seed_points)
        self.bounds = bounds
        if not sigma > 0:
            raise ConfigError(f"search.sigma is {sigma}; it must be > 0")
        from deap import cma

        start = list(centroid) if centroid is not None else [0.0] * dim
        self.cma = cma.Strategy(centroid=start, sigma=float(sigma), lambda_=population)

    def _sample(self) -> list[Vector]:
        return [[float(v) for v in ind] for ind in self.cma.generate(list)]

    def _update(self, xs: Sequence[Sequence[float]], fitness: Sequence[float]) -> None:
        fitness = self._penalised(xs, fitness) if self.bounds else list(fitness)
        self.cma.update([_individual(x, f) for x, f in zip(xs, fitness, strict=True)])

    def _penalised(self, xs: Sequence[Sequence[float]], fitness: Sequence[float]) -> list[float]:
        """Box handling for the ``clip`` mapping: fitness of the clipped point minus a
        penalty on the squared distance outside the box, scaled by this generation's
        fitness spread (Hansen, "The CMA Evolution Strategy: A Tutorial", boundary
        handling). Without it the flat region outside the box lets the mean drift."""
        assert self.bounds is not None
        lo, hi = self.bounds
        real = [f for f in fitness if f > WORST_FITNESS] or [0.0]
        spread = (max(real) - min(real)) or 1.0
        out = []
        for x, f in zip(xs, fitness, strict=True):
            d2 = sum((v - min(hi, max(lo, v))) ** 2 for v in x)
            out.append(float(f) - spread * d2)
        return out

    @property
    def mean(self) -> Vector:
        return [float(v) for v in self.cma.centroid]

    def state(self) -> dict[str, Any]:
        arrays: dict[str, Any] = {k: getattr(self.cma, k).tolist() for k in self._ARRAYS}
        # Memory layout changes BLAS rounding: keep it so a resumed run is bit-identical.
        arrays["layout"] = {
            k: "F" if getattr(self.cma, k).flags.f_contiguous else "C" for k in self._ARRAYS
        }
        scalars = {
            "sigma": float(self.cma.sigma),
            "cond": float(self.cma.cond),
            "update_count": int(self.cma.update_count),
        }
        return {**super().state(), "cma": {**arrays, **scalars}}

    def load_state(self, state: dict[str, Any]) -> None:
        import numpy as np

        super().load_state(state)
        doc = state["cma"]
        layout = doc.get("layout", {})
        for k in self._ARRAYS:
            setattr(self.cma, k, np.array(doc[k], dtype=float, order=layout.get(k, "C")))
        self.cma.sigma = float(doc["sigma"])
        self.cma.cond = float(doc["cond"])
        self.cma.update_count = int(doc["update_count"])


class Genetic(Strategy):
    """(μ + λ) GA: tournament selection, blend crossover, Gaussian mutation.

    Generation 0 is uniform in ``[low, high]^dim``. Each offspring is a tournament
    winner, blended (``cxBlend``) with a second winner with probability ``crossover``,
    then mutated (``mutGaussian``, per-coordinate probability ``indpb``); an offspring
    that was not crossed is always mutated. The next parents are the best
    ``population`` of parents ∪ offspring.
    """

    name = "ga"

    def __init__(
        self,
        dim: int,
        population: int,
        *,
        low: float = 0.0,
        high: float = 1.0,
        tournament: int,
        crossover: float,
        mutation_sigma: float,
        mutation_indpb: float | None,
        seed: int = 0,
        seed_points: Sequence[Sequence[float]] = (),
    ) -> None:
        super().__init__(dim, population, seed=seed, seed_points=seed_points)
        if tournament < 1 or not 0.0 <= crossover <= 1.0 or not mutation_sigma > 0:
            raise ConfigError(
                "search.ga needs tournament >= 1, crossover in [0, 1] and mutation_sigma > 0"
            )
        self.low, self.high = float(low), float(high)
        self.tournament, self.crossover = int(tournament), float(crossover)
        self.mutation_sigma = float(mutation_sigma)
        self.indpb = float(mutation_indpb) if mutation_indpb is not None else max(0.2, 1 / dim)
        self.parents: list[tuple[Vector, float]] = []

    def _sample(self) -> list[Vector]:
        if not self.parents:
            return [
                [random.uniform(self.low, self.high) for _ in range(self.dim)]
                for _ in range(self.population)
            ]
        from deap import tools

        pool = [_individual(x, f) for x, f in self.parents]
        out: list[Vector] = []
        for _ in range(self.population):
            child = _individual(tools.selTournament(pool, 1, self.tournament)[0])
            crossed = random.random() < self.crossover
            if crossed:
                other = _individual(tools.selTournament(pool, 1, self.tournament)[0])
                child, _ = tools.cxBlend(child, other, 0.5)
            if not crossed or random.random() < 0.5:
                (child,) = tools.mutGaussian(child, 0.0, self.mutation_sigma, self.indpb)
            out.append([float(v) for v in child])
        return out

    def _update(self, xs: Sequence[Sequence[float]], fitness: Sequence[float]) -> None:
        merged = self.parents + [
            ([float(v) for v in x], float(f)) for x, f in zip(xs, fitness, strict=True)
        ]
        merged.sort(key=lambda p: p[1], reverse=True)  # stable: earlier wins ties
        self.parents = merged[: self.population]

    @property
    def mean(self) -> Vector:
        if not self.parents:
            return [(self.low + self.high) / 2] * self.dim
        return [sum(x[i] for x, _ in self.parents) / len(self.parents) for i in range(self.dim)]

    def state(self) -> dict[str, Any]:
        return {**super().state(), "parents": [[x, f] for x, f in self.parents]}

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.parents = [([float(v) for v in x], float(f)) for x, f in state["parents"]]


def packaged_search() -> dict[str, Any]:
    """The ``search`` defaults of configs/search/base.yaml (where they are kept)."""
    from elo.config import load_part

    return load_part("search", "base")


def make_strategy(
    name: str,
    *,
    dim: int,
    population: int,
    seed: int = 0,
    sigma: float | None = None,
    centroid: Sequence[float] | None = None,
    seed_points: Sequence[Sequence[float]] = (),
    bounds: tuple[float, float] | None = None,
    ga: Mapping[str, Any] | None = None,
) -> Strategy:
    """Build a strategy by name (``cma`` | ``ga``) from the ``search`` config values;
    ``sigma`` and the ``ga`` options not given are those of configs/search/base.yaml."""
    if name not in ("cma", "ga"):
        raise ConfigError(f"unknown search strategy {name!r}; use cma or ga")
    base = packaged_search() if sigma is None or name == "ga" else {}
    if name == "cma":
        return CMAES(
            dim,
            population,
            sigma=float(base["sigma"] if sigma is None else sigma),
            centroid=centroid,
            bounds=bounds,
            seed=seed,
            seed_points=seed_points,
        )
    opts = dict(ga or {})
    known = {*base["ga"], "low", "high"}
    for key in opts:
        if key not in known:
            raise ConfigError(
                f"unknown config key 'search.ga.{key}'; known: {', '.join(sorted(known))}"
            )
    return Genetic(dim, population, seed=seed, seed_points=seed_points, **{**base["ga"], **opts})


def strategy_for(settings: SearchSettings, space: WeightSpace, *, seed: int = 0) -> Strategy:
    """The strategy of a search: ``search.strategy`` over ``space`` (centred at λ = 0.5,
    boxed to [0, 1] for the ``clip`` mapping), seeded with the experiment seed."""
    return make_strategy(
        settings.strategy,
        dim=space.dim,
        population=settings.population,
        seed=int(seed),
        sigma=settings.sigma,
        centroid=space.centre(),
        bounds=(0.0, 1.0) if space.mapping == "clip" else None,
        seed_points=space.seed_points() if settings.seed_points else (),
        ga={**_ga_box(space), **settings.ga},
    )


def _ga_box(space: WeightSpace) -> dict[str, float]:
    """The GA's initial box in vector space: λ ∈ [0, 1] (clip) or [0.05, 0.95] (sigmoid)."""
    from elo.search.space import to_vector

    lo, hi = to_vector([0.0, 1.0] if space.mapping == "clip" else [0.05, 0.95], space.mapping)
    return {"low": lo, "high": hi}
