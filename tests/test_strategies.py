"""DEAP strategies: reach a known optimum over λ, own their RNG, resume from JSON state."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from elo.search.space import to_lambda
from elo.search.strategies import CMAES, WORST_FITNESS, Genetic, make_strategy

TARGET = [0.2, 0.8, 0.0, 0.5, 1.0, 0.3]  # two optima on the box boundary


def fitness(x: list[float]) -> float:
    """Synthetic fitness over λ with its maximum 0 at λ = TARGET."""
    return -sum((a - b) ** 2 for a, b in zip(to_lambda(x, "clip"), TARGET, strict=True))


def run(strategy: CMAES | Genetic, generations: int) -> tuple[list[float], float]:
    best: tuple[list[float], float] = ([], -math.inf)
    for _ in range(generations):
        pop = strategy.ask()
        fit = [fitness(x) for x in pop]
        strategy.tell(pop, fit)
        i = int(np.argmax(fit))
        if fit[i] > best[1]:
            best = (pop[i], fit[i])
    return best


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("cma", {"sigma": 0.3, "centroid": [0.5] * 6, "bounds": (0.0, 1.0)}), ("ga", {})],
)
def test_reaches_known_optimum(name: str, kwargs: dict) -> None:
    s = make_strategy(name, dim=6, population=16, seed=3, **kwargs)
    x, f = run(s, 30)  # type: ignore[arg-type]
    lam = to_lambda(x, "clip")
    assert f > -1e-3
    assert max(abs(a - b) for a, b in zip(lam, TARGET, strict=True)) < 0.03
    start = make_strategy(name, dim=6, population=16, seed=3, **kwargs)
    assert max(fitness(v) for v in start.ask()) < -0.05  # the optimum was not given away


def test_cma_box_penalty_keeps_the_mean_near_the_box() -> None:
    s = make_strategy("cma", dim=6, population=16, seed=3, centroid=[0.5] * 6, bounds=(0.0, 1.0))
    run(s, 30)  # type: ignore[arg-type]
    assert all(-0.5 < m < 1.5 for m in s.mean)  # type: ignore[attr-defined]
    assert all(abs(m - t) < 0.05 for m, t in zip(s.mean, TARGET, strict=True) if 0 < t < 1)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["cma", "ga"])
def test_global_rngs_untouched_and_seeded(name: str) -> None:
    np.random.seed(11)
    random.seed(12)
    s = make_strategy(name, dim=4, population=6, seed=5)
    pop = s.ask()
    s.tell(pop, [fitness(x + [0.0, 0.0]) for x in pop])
    pop2 = s.ask()
    after = (np.random.random(), random.random())
    np.random.seed(11)
    random.seed(12)
    assert after == (np.random.random(), random.random())
    same = make_strategy(name, dim=4, population=6, seed=5)
    p = same.ask()
    same.tell(p, [fitness(x + [0.0, 0.0]) for x in p])
    assert p == pop and same.ask() == pop2
    other = make_strategy(name, dim=4, population=6, seed=6)
    assert other.ask() != pop


@pytest.mark.parametrize("name", ["cma", "ga"])
def test_json_state_resumes_the_same_sequence(name: str) -> None:
    a = make_strategy(name, dim=6, population=8, seed=2)
    for _ in range(3):
        pop = a.ask()
        a.tell(pop, [fitness(x) for x in pop])
    state = json.loads(json.dumps(a.state()))
    expect = []
    for _ in range(3):
        pop = a.ask()
        expect.append(pop)
        a.tell(pop, [fitness(x) for x in pop])
    b = make_strategy(name, dim=6, population=8, seed=999)  # different seed: state wins
    b.load_state(state)
    got = []
    for _ in range(3):
        pop = b.ask()
        got.append(pop)
        b.tell(pop, [fitness(x) for x in pop])
    assert got == expect
    assert b.generation == a.generation == 6


def test_seed_points_fill_the_first_generation_only() -> None:
    pts = [[1.0] * 3, [1.0, 0.0, 0.0]]
    for name in ("cma", "ga"):
        s = make_strategy(name, dim=3, population=5, seed=0, seed_points=pts)
        pop = s.ask()
        assert pop[:2] == pts and pop[2] not in pts
        s.tell(pop, [0.0, 1.0, 2.0, 3.0, 4.0])
        assert not any(p in pts for p in s.ask())


def test_tell_rejects_nonfinite_and_worst_ranks_last() -> None:
    s = make_strategy("ga", dim=2, population=4, seed=0)
    pop = s.ask()
    with pytest.raises(ValueError, match="finite"):
        s.tell(pop, [0.0, math.nan, 1.0, 2.0])
    s.tell(pop, [WORST_FITNESS, -5.0, -1.0, -2.0])
    assert [f for _, f in s.parents] == [-1.0, -2.0, -5.0, WORST_FITNESS]  # type: ignore[attr-defined]


def test_bad_options_are_config_errors() -> None:
    from elo.errors import ConfigError

    with pytest.raises(ConfigError, match="population"):
        make_strategy("cma", dim=3, population=1)
    with pytest.raises(ConfigError, match="search.ga.mutation"):
        make_strategy("ga", dim=3, population=4, ga={"mutation": 0.1})
    with pytest.raises(ConfigError, match="unknown search strategy"):
        make_strategy("pso", dim=3, population=4)
    s = make_strategy("cma", dim=3, population=4)
    with pytest.raises(ConfigError, match="strategy 'cma'"):
        make_strategy("ga", dim=3, population=4).load_state(s.state())
