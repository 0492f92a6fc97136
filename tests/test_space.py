"""The weight space: vector <-> λ mappings are inverses, λ stays in [0, 1], term order."""

from __future__ import annotations

import random
from typing import Any

import pytest

from elo.errors import ConfigError
from elo.search.space import EPS, WeightSpace, to_lambda, to_vector

TERMS = (
    "rgb/reconstruction",
    "flow/reconstruction",
    "rgb+audio/contrastive",
    "distill/flow->rgb@2",
)


def search_section(**keys: Any) -> dict[str, Any]:
    """configs/search/base.yaml (every search key with its default) with ``keys`` over it."""
    from elo.config import load_part

    return {**load_part("search", "base"), **keys}


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
            "search": search_section(mapping="sigmoid"),
        }
        space = WeightSpace.from_config(cfg)
    finally:
        TASKS.remove("zz_space_standin")
    assert space.terms == ("rgb/zz_space_standin", "flow/zz_space_standin", "distill/flow->rgb@3")
    assert space.mapping == "sigmoid"


# -- search.space: families; search.sparse_threshold ------------------------------------

FAMILIES = ("alignment", "contrastive", "future", "reconstruction", "temporal_order")
FAMILIES += ("transfer", "distill/flow", "distill/audio")


def default_terms() -> tuple[str, ...]:
    from elo.config import load_config
    from elo.model.objective import terms_from_config

    return tuple(str(t) for t in terms_from_config(load_config("demo")))


def test_families_of_the_default_objective_cover_every_term_once() -> None:
    terms = default_terms()
    space = WeightSpace(terms, "clip", space="families")
    groups = space.families()
    assert space.dim == len(groups) == 8 and set(space.names) == set(FAMILIES)
    flat = [t for members in groups.values() for t in members]
    assert sorted(flat) == sorted(terms) and len(flat) == len(set(flat)) == 24
    assert all(len(members) == 3 for members in groups.values())
    assert groups["distill/audio"] == [t for t in terms if t.startswith("distill/audio->")]
    assert groups["contrastive"] == [t for t in terms if t.endswith("/contrastive")]


@pytest.mark.parametrize("mapping", ["clip", "sigmoid"])
def test_family_space_expands_round_trips_and_stays_in_bounds(mapping: str) -> None:
    terms = default_terms()
    space = WeightSpace(terms, mapping, space="families")
    rng = random.Random(2)
    for _ in range(20):
        x = [rng.gauss(0, 3) for _ in range(space.dim)]
        w = space.weights(x)
        assert list(w) == list(terms)  # every term, in term order
        assert all(0.0 <= v <= 1.0 for v in w.values())
        for name, members in space.families().items():
            assert len({w[t] for t in members}) == 1, name  # one λ per family
        clamp = {t: min(1 - EPS, max(EPS, v)) if mapping == "sigmoid" else v for t, v in w.items()}
        assert space.weights(space.vector(w)) == pytest.approx(clamp, abs=1e-9)
    assert space.weights(space.centre()) == pytest.approx({t: 0.5 for t in terms})


def test_family_space_refuses_weights_that_split_a_family() -> None:
    space = WeightSpace(default_terms(), "clip", space="families")
    lam = {t: 0.5 for t in space.terms}
    lam["flow/future"] = 0.9
    with pytest.raises(ConfigError, match="family 'future'.*flow/future=0.9"):
        space.vector(lam)


def test_family_seed_points_are_uniform_then_one_per_family() -> None:
    space = WeightSpace(default_terms(), "clip", space="families")
    pts = [space.weights(p) for p in space.seed_points()]
    assert len(pts) == 1 + 8 and pts[0] == {t: 1.0 for t in space.terms}
    on = [sorted(k for k, v in p.items() if v == 1.0) for p in pts[1:]]
    assert on == [sorted(m) for m in space.families().values()]
    assert all(v in (0.0, 1.0) for p in pts for v in p.values())


@pytest.mark.parametrize("mapping", ["clip", "sigmoid"])
def test_sparse_threshold_sets_small_lambda_to_exactly_zero(mapping: str) -> None:
    space = WeightSpace(TERMS, mapping, sparse_threshold=0.2)
    x = to_vector([0.1, 0.199, 0.2, 0.7], mapping)
    w = space.weights(x)
    assert w[TERMS[0]] == 0.0 and w[TERMS[1]] == 0.0  # below: exactly 0, not ~0
    assert w[TERMS[2]] == pytest.approx(0.2) and w[TERMS[3]] == pytest.approx(0.7)
    dense = WeightSpace(TERMS, mapping).weights(x)
    assert dense[TERMS[0]] == pytest.approx(0.1)  # threshold 0: unchanged
    # with families: a family below the threshold switches all its terms off
    fam = WeightSpace(default_terms(), mapping, space="families", sparse_threshold=0.2)
    lam = dict.fromkeys(fam.names, 0.6)
    lam["distill/audio"] = 0.1
    w = fam.weights(to_vector([lam[n] for n in fam.names], mapping))
    off = sorted(t for t, v in w.items() if v == 0.0)
    assert off == sorted(fam.families()["distill/audio"])


def test_sparse_candidate_builds_no_head_and_no_encoder_it_does_not_need() -> None:
    """A candidate whose audio terms all fall below the threshold gets no audio encoder
    and no heads for those terms, and reads no audio (the loader's modalities are those
    of the active terms, search/warmstart.py); without the threshold it gets them all."""
    from elo.config import load_config
    from elo.model.network import ELoModel
    from elo.model.objective import Weights, terms_from_config

    cfg = load_config("demo")
    terms = terms_from_config(cfg)
    lam = {str(t): 0.15 if "audio" in t.modalities else 0.8 for t in terms}
    for threshold, audio in ((0.2, False), (0.0, True)):
        space = WeightSpace(tuple(lam), "sigmoid", sparse_threshold=threshold)
        w = Weights(terms, space.weights(space.vector(lam)))
        model = ELoModel(cfg, w, seed=0)
        assert ("audio" in model.encoders) is audio
        assert any("audio" in k for k in model.heads) is audio
        assert len(model.heads) == (24 if audio else 24 - 12)
        read = {m for t in w.active for m in t.modalities}
        assert read == ({"rgb", "flow", "audio"} if audio else {"rgb", "flow"})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("space", "tasks", "search.space"),
        ("sparse_threshold", 0.5, "search.sparse_threshold"),
        ("sparse_threshold", -0.1, "search.sparse_threshold"),
        ("sparse_threshold", True, "search.sparse_threshold"),
        ("paired", "yes", "search.paired"),
    ],
)
def test_space_settings_refuse_bad_values(key: str, value: object, message: str) -> None:
    from elo.search.settings import SearchSettings

    with pytest.raises(ConfigError, match=message):
        SearchSettings.from_config({"search": search_section(**{key: value})})


def test_space_settings_default_off_and_the_yaml_files_agree() -> None:
    from elo.config import load_part
    from elo.search.settings import SearchSettings

    s = SearchSettings.from_config({"search": search_section()})
    assert (s.paired, s.space, s.sparse_threshold) == (False, "terms", 0.0)
    for name in ("cma", "ga"):
        doc = load_part("search", name)
        assert (doc["paired"], doc["space"], doc["sparse_threshold"]) == (False, "terms", 0.0)
    cfg: dict[str, Any] = {
        "search": search_section(space="families", sparse_threshold=0.1, mapping="sigmoid")
    }
    cfg["objective"] = {
        "modalities": ["rgb", "flow"],
        "tasks": ["reconstruction"],
        "exclude": [],
        "distill": {"student": "rgb", "teachers": ["flow"], "levels": [2, 3]},
    }
    space = WeightSpace.from_config(cfg)
    assert (space.space, space.sparse_threshold, space.mapping) == ("families", 0.1, "sigmoid")
    assert set(space.names) == {"reconstruction", "distill/flow"}


def test_a_strategy_and_its_saved_state_follow_the_space() -> None:
    from elo.search.generation import Evolution
    from elo.search.settings import SearchSettings
    from elo.search.strategies import strategy_for

    terms = default_terms()
    settings = SearchSettings.from_config(
        {"search": search_section(population=6, seed_points=True)}
    )
    fam = WeightSpace(terms, "clip", space="families")
    strategy = strategy_for(settings, fam, seed=0)
    pop = strategy.ask()
    assert strategy.dim == 8 and all(len(x) == 8 for x in pop)
    assert fam.weights(pop[0]) == {t: 1.0 for t in terms}  # the uniform seed point
    state = Evolution(strategy, fam, 2).get_state()
    assert state["coordinates"] == list(fam.names)
    flat = WeightSpace(terms, "clip")
    other = Evolution(strategy_for(settings, flat, seed=0), flat, 2)
    with pytest.raises(ConfigError, match="search.space"):
        other.set_state(state)
    assert "coordinates" not in other.get_state()  # the terms space: the state file as before
