"""The weight space: vector <-> λ mappings are inverses, λ stays in [0, 1], term order."""

from __future__ import annotations

import random

import pytest

from elo.errors import ConfigError
from elo.search.space import EPS, WeightSpace, to_lambda, to_vector

TERMS = (
    "rgb/reconstruction",
    "flow/reconstruction",
    "rgb+audio/contrastive",
    "distill/flow->rgb@2",
)


@pytest.mark.parametrize("mapping", ["clip", "sigmoid"])
def test_lambda_is_in_unit_box_for_any_vector(mapping: str) -> None:
    rng = random.Random(0)
    x = [rng.gauss(0, 50) for _ in range(200)] + [1e6, -1e6, 0.0]
    lam = to_lambda(x, mapping)
    assert all(0.0 <= v <= 1.0 for v in lam)
    # monotone: a larger coordinate never gives a smaller λ
    pairs = sorted(zip(x, lam, strict=True))
    assert all(a[1] <= b[1] for a, b in zip(pairs, pairs[1:], strict=False))


@pytest.mark.parametrize("mapping", ["clip", "sigmoid"])
def test_inverse_round_trips(mapping: str) -> None:
    rng = random.Random(1)
    lam = [rng.random() for _ in range(50)]
    back = to_lambda(to_vector(lam, mapping), mapping)
    tol = 1e-12 if mapping == "clip" else 1e-9
    for a, b in zip(lam, back, strict=True):
        expect = min(1 - EPS, max(EPS, a)) if mapping == "sigmoid" else a
        assert b == pytest.approx(expect, abs=tol)


def test_clip_switches_terms_off_exactly() -> None:
    assert to_lambda([-0.3, 0.0, 0.4, 1.7], "clip") == [0.0, 0.0, 0.4, 1.0]
    assert to_vector([0.0, 1.0], "sigmoid")[0] < -6 < 6 < to_vector([0.0, 1.0], "sigmoid")[1]


def test_bad_inputs_name_the_problem() -> None:
    with pytest.raises(ConfigError, match="search.mapping"):
        to_lambda([0.1], "tanh")
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        to_vector([1.5])
    with pytest.raises(ConfigError, match="no terms"):
        WeightSpace(())


def test_space_maps_vectors_to_named_weights() -> None:
    space = WeightSpace(TERMS, "clip")
    w = space.weights([0.1, -1.0, 2.0, 0.5])
    assert list(w) == list(TERMS)
    assert w == {TERMS[0]: 0.1, TERMS[1]: 0.0, TERMS[2]: 1.0, TERMS[3]: 0.5}
    assert space.vector(w) == [0.1, 0.0, 1.0, 0.5]
    assert space.centre() == [0.5] * 4
    with pytest.raises(ValueError, match="3 entries"):
        space.weights([0.1, 0.2, 0.3])


def test_seed_points_are_uniform_then_one_per_task() -> None:
    space = WeightSpace(TERMS, "clip")
    pts = [space.weights(p) for p in space.seed_points()]
    assert pts[0] == {t: 1.0 for t in TERMS}
    # tasks in first-appearance order: reconstruction (2 terms), contrastive, distill
    assert [sorted(k for k, v in p.items() if v == 1.0) for p in pts[1:]] == [
        sorted(TERMS[:2]),
        [TERMS[2]],
        [TERMS[3]],
    ]
    assert all(sum(p.values()) == sum(1 for v in p.values() if v == 1.0) for p in pts)


def test_from_config_uses_the_objective_terms() -> None:
    from elo.model.heads import TASKS, TaskHead

    class _Stand(TaskHead):
        name = "zz_space_standin"
        arity = "one"

    TASKS.add("zz_space_standin", _Stand)
    try:
        cfg = {
            "objective": {
                "modalities": ["rgb", "flow"],
                "tasks": ["zz_space_standin"],
                "exclude": [],
                "distill": {"student": "rgb", "teachers": ["flow"], "levels": [3]},
            },
            "search": {"mapping": "sigmoid"},
        }
        space = WeightSpace.from_config(cfg)
    finally:
        TASKS.remove("zz_space_standin")
    assert space.terms == ("rgb/zz_space_standin", "flow/zz_space_standin", "distill/flow->rgb@3")
    assert space.mapping == "sigmoid"
