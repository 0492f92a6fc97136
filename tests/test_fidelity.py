"""Multi-fidelity rungs and warm start (search/fidelity.py, search/warmstart.py,
docs/search.md): the ranking rule the strategy sees, the rung bookkeeping of the
Ray-free evolution (records, best, resume by replay), the settings, the collapse
check, and the trunk: trained once, stored, reused on resume, loaded by candidates."""

from __future__ import annotations

import hashlib
import math
import random
from pathlib import Path
from typing import Any

import pytest

from elo.errors import ConfigError
from elo.search.fidelity import (
    active_rungs,
    embedding_std,
    rank_key,
    rejection,
    rung_steps,
    selection_values,
)
from elo.search.searcher import EvolutionSearcher
from elo.search.settings import FitnessSettings, SearchSettings, fitness_section
from elo.search.space import WeightSpace
from elo.search.strategies import WORST_FITNESS, make_strategy

TERMS = ("rgb/a", "rgb/b", "flow/a", "distill/flow->rgb@2")


def test_rung_steps_round_dedupe_and_end_at_the_proxy_steps() -> None:
    assert rung_steps([0.25, 0.5, 1.0], 20) == [5, 10, 20]
    assert rung_steps([0.25, 0.5, 1.0], 2) == [1, 2]  # 0.5 -> 1, duplicate dropped
    assert rung_steps(None, 7) == [7]
    assert rung_steps([0.1, 1.0], 400) == [40, 400]


@pytest.mark.parametrize("seed", range(6))
def test_a_lower_rung_never_outranks_a_higher_one(seed: int) -> None:
    """The rule of docs/search.md: ranked by rung reached, then fitness; a candidate
    that completed keeps its fitness; failures are worst."""
    rng = random.Random(seed)
    n, top = 24, 3
    fitness: list[float | None] = [rng.uniform(-5, 5) * 10 ** rng.randint(-3, 3) for _ in range(n)]
    rungs = [rng.randint(1, top) for _ in range(n)]
    fitness[0] = None  # a failed candidate
    values = selection_values(fitness, rungs, top)
    assert values[0] == WORST_FITNESS
    for i in range(1, n):
        for j in range(1, n):
            fi, fj = fitness[i], fitness[j]
            assert fi is not None and fj is not None
            if rungs[i] > rungs[j]:
                assert values[i] > values[j]
            elif rungs[i] == rungs[j]:
                assert (values[i] > values[j]) == (fi > fj)
                assert (values[i] > values[j]) == (rank_key(rungs[i], fi) > rank_key(rungs[j], fj))
        if rungs[i] == top:
            assert values[i] == fitness[i]
    # one rung: the values are the fitness themselves (the paper's search)
    assert selection_values([1.0, -2.0, None], [1, 1, 1], 1) == [1.0, -2.0, WORST_FITNESS]


def make(rungs: int, seed: int = 0, population: int = 6) -> EvolutionSearcher:
    space = WeightSpace(TERMS, "clip")
    s = make_strategy(
        "cma",
        dim=space.dim,
        population=population,
        seed=seed,
        centroid=space.centre(),
        bounds=(0.0, 1.0),
    )
    return EvolutionSearcher(s, space, 3, rungs=rungs)


def drive_generation(se: EvolutionSearcher, g: int, rng: random.Random) -> list[dict[str, Any]]:
    """One generation: each trial reports rung 1..k (k random), the last as complete."""
    out = []
    cfgs = [se.suggest(f"{g}.{i}") for i in range(6)]
    for i, c in enumerate(cfgs):
        assert c is not None
        k = rng.randint(1, 3)
        results = [
            {"fitness": rng.uniform(-1, 0) + r, "rung": r, "rung_t": 2 ** (r - 1)}
            for r in range(1, k + 1)
        ]
        for res in results[:-1]:
            se.on_trial_result(f"{g}.{i}", res)
        se.on_trial_complete(f"{g}.{i}", results[-1])
        out.append({"index": c["index"], "rungs": [r["fitness"] for r in results]})
    return out


def test_evolution_records_every_rung_and_tells_the_rank_rule() -> None:
    told: list[list[float]] = []
    se = make(rungs=3, seed=1)
    original = se.strategy.tell
    se.strategy.tell = lambda pop, vals: (told.append(list(vals)), original(pop, vals))[1]  # type: ignore[method-assign]
    records: list[dict[str, Any]] = []

    class Log:
        def evaluation(self, record: dict[str, Any]) -> None:
            records.append(record)

        def checkpoint(self, evolution: Any) -> None: ...

        def generation_done(self, summary: dict[str, Any]) -> None:
            records.append({"summary": summary})

    se.evolution.listener = Log()
    sent = drive_generation(se, 0, random.Random(3))
    evals = [r for r in records if "summary" not in r]
    by_index = {r["index"]: r for r in evals}
    for s in sent:
        rec = by_index[s["index"]]
        assert rec["rungs"] == s["rungs"] and rec["rung"] == len(s["rungs"])
        assert rec["fitness"] == s["rungs"][-1]
    ordered = [by_index[i] for i in range(6)]
    assert told[0] == selection_values(
        [r["fitness"] for r in ordered], [r["rung"] for r in ordered], 3
    )
    summary = records[-1]["summary"]
    top = max(ordered, key=lambda r: rank_key(r["rung"], r["fitness"]))
    assert summary["best"] == top["fitness"]
    assert summary["reached"][0] == 6 and summary["reached"][2] == sum(
        r["rung"] == 3 for r in ordered
    )
    assert se.best is not None and se.best["rung"] == top["rung"]
    assert se.best["fitness"] == top["fitness"]


def test_rung_search_replays_from_its_log_to_the_same_state() -> None:
    """Resume is by replay of the log: the rungs recorded give the same strategy state,
    best and rung counts as the uninterrupted search."""
    records: list[dict[str, Any]] = []

    class Log:
        def evaluation(self, record: dict[str, Any]) -> None:
            records.append(record)

        def checkpoint(self, evolution: Any) -> None: ...

        def generation_done(self, summary: dict[str, Any]) -> None: ...

    ref = make(rungs=3, seed=4)
    ref.evolution.listener = Log()
    rng = random.Random(9)
    for g in range(3):
        drive_generation(ref, g, rng)
    assert ref.finished
    again = make(rungs=3, seed=4)
    assert again.replay(records) == 18 and again.finished
    assert again.strategy.state() == ref.strategy.state()
    assert again.best == ref.best


def test_a_restarted_trial_starts_its_rung_list_over() -> None:
    se = make(rungs=3)
    c = se.suggest("t")
    assert c is not None
    se.on_trial_result("t", {"fitness": -1.0, "rung": 1})
    se.on_trial_result("t", {"fitness": -0.5, "rung": 2})
    se.on_trial_result("t", {"fitness": -2.0, "rung": 1})  # Tune restarted it from scratch
    assert se.evolution.partial["t"] == [-2.0]


def test_rejected_candidates_get_their_status_and_the_worst_value() -> None:
    se = make(rungs=3)
    cfgs = [se.suggest(f"t{i}") for i in range(6)]
    assert all(cfgs)
    se.on_trial_complete("t0", {"fitness": math.nan, "rung": 1, "rejected": "collapsed"})
    se.on_trial_complete("t1", {"fitness": math.nan, "rung": 1, "rejected": "nonfinite"})
    st = se.evolution
    assert st.fitness[0] is None and st.fitness[1] is None
    assert rejection(0.5, 1e-7, 1e-4) == "collapsed"
    assert rejection(math.inf, 0.2, 1e-4) == "nonfinite"
    assert rejection(0.5, math.nan, 1e-4) == "nonfinite"
    assert rejection(0.5, 0.2, 1e-4) is None


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("rungs", [0.5, 0.25, 1.0], "search.rungs"),
        ("rungs", [0.25, 0.5], "search.rungs"),
        ("rungs", [0.0, 1.0], "search.rungs"),
        ("reduction_factor", 1, "search.reduction_factor"),
        ("warm_start_steps", 0, "search.warm_start_steps"),
        ("warm_start", "yes", "search.warm_start"),
        ("collapse_std", -1, "search.collapse_std"),
    ],
)
def test_fidelity_settings_refuse_bad_values(key: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SearchSettings.from_config({"search": _search(**{key: value})})


def _search(**over: Any) -> dict[str, Any]:
    """The search section of configs/search/base.yaml with ``over`` replacing keys."""
    from elo.config import load_part

    return {**load_part("search", "base"), **over}


def _fitness(name: str, **over: Any) -> FitnessSettings:
    """configs/fitness/<name>.yaml, parsed, with ``over`` replacing keys."""
    return FitnessSettings.from_config({"fitness": {**fitness_section(name), **over}})


def test_rungs_apply_to_training_fitness_and_opt_in_synthetic() -> None:
    s = SearchSettings.from_config({"search": _search(rungs=[0.25, 0.5, 1.0])})
    assert active_rungs(_fitness("zipf"), s, 20) == [5, 10, 20]
    assert active_rungs(_fitness("synthetic"), s, 20) is None  # rung_noise null
    assert active_rungs(_fitness("synthetic", rung_noise=0.1), s, 20) == [5, 10, 20]
    one = SearchSettings.from_config({"search": _search(rungs=[1.0])})
    assert active_rungs(_fitness("zipf"), one, 20) is None
    off = SearchSettings.from_config({"search": _search()})
    assert (off.rungs, off.warm_start) == (None, False)


# -- real model: collapse threshold, staged training, the trunk -----------------------


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from elo.data.demo_data import make_demo

    return make_demo(
        tmp_path_factory.mktemp("fid") / "demo", clips=16, classes=4, seed=0, workers=1
    )


def _context(cfg: dict[str, Any], root: Path, **over: Any) -> Any:
    """The trials' context of a search with ``cfg``'s settings, ``over`` replaced."""
    import dataclasses

    from elo.search.trainable import TrialContext

    ctx = TrialContext.from_settings(cfg, SearchSettings.from_config(cfg), str(root))
    return dataclasses.replace(ctx, **over)


def tiny_cfg(root: Path) -> dict[str, Any]:
    from elo.config import load_config

    cfg = load_config(
        "demo",
        [
            "objective.modalities=[rgb]",
            "train.batch_size=4",
            "objective.tasks=[reconstruction,temporal_order]",
        ],
    )
    cfg["data"]["root"] = str(root)
    return cfg


@pytest.mark.parametrize("seed", range(5))
def test_collapse_threshold_sits_far_below_healthy_embeddings(seed: int) -> None:
    """Measured: the mean embedding std of an untrained tiny RGB encoder on random
    clips is ~0.2 (5 seeds); identical clips give exactly 0. search.collapse_std =
    1e-4 leaves a margin of > 100x to both."""
    import torch

    from elo.config import load_config
    from elo.model.network import ELoModel
    from elo.model.objective import Weights, terms_from_config
    from elo.search.fitness.data import fitness_embed

    cfg = load_config("demo", ["objective.modalities=[rgb]"])
    terms = terms_from_config(cfg)
    model = ELoModel(cfg, Weights(terms, {str(t): 0.5 for t in terms}), seed=seed)
    torch.manual_seed(seed)
    x = torch.rand(12, 3, 8, 32, 32)
    healthy = embedding_std(fitness_embed(model.encoders["rgb"], x))
    same = embedding_std(fitness_embed(model.encoders["rgb"], x[:1].repeat(12, 1, 1, 1, 1)))
    threshold = SearchSettings.from_config({"search": _search()}).collapse_std
    assert healthy > 100 * threshold
    assert same < threshold / 100


def test_staged_training_without_trunk_equals_train_model(demo_root: Path) -> None:
    import torch

    from elo.model.objective import Weights, terms_from_config
    from elo.search.warmstart import staged_training
    from elo.train.trainer import train_model

    cfg = tiny_cfg(demo_root)
    terms = terms_from_config(cfg)
    w = Weights(terms, {str(t): 0.5 for t in terms})
    ref = train_model(cfg, w, data_root=str(demo_root), steps=3, seed=1, progress=False)
    ctx = _context(cfg, demo_root, steps=3, seed=1)
    stages = list(staged_training(ctx, w, [1, 3]))
    assert [s for s, _, _ in stages] == [1, 3]
    model = stages[-1][1]
    for k, v in ref.model.state_dict().items():
        assert torch.equal(v, model.state_dict()[k]), k


def test_trunk_is_trained_once_stored_and_reused(
    demo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    import elo.train.trainer as trainer
    from elo.model.objective import Weights, terms_from_config
    from elo.search.warmstart import TRUNK_FILE, ensure_trunk, init_from_trunk, staged_training

    cfg = tiny_cfg(demo_root)
    ctx = _context(cfg, demo_root, steps=2, seed=0)
    lines: list[str] = []
    calls = []
    real = trainer.train_model
    monkeypatch.setattr(trainer, "train_model", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    trunk = ensure_trunk(ctx, tmp_path, 2, lines.append)
    path = tmp_path / TRUNK_FILE
    digest, mtime = hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns
    again = ensure_trunk(ctx, tmp_path, 2, lines.append)  # --resume
    assert len(calls) == 1 and "trained the trunk for 2 steps" in lines[0]
    assert "reusing the trunk" in lines[1]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert path.stat().st_mtime_ns == mtime
    assert all(torch.equal(trunk[k], again[k]) for k in trunk)

    # a candidate starts from the trunk: its encoder before any step is the trunk's
    terms = terms_from_config(cfg)
    w = Weights(terms, {str(terms[0]): 1.0, **{str(t): 0.0 for t in terms[1:]}})
    from elo.model.network import ELoModel

    fresh = ELoModel(cfg, w, seed=5)
    assert init_from_trunk(fresh, trunk) > 0
    enc = {k: v for k, v in fresh.state_dict().items() if k.startswith("encoders.rgb.")}
    assert enc and all(torch.equal(v, trunk[k]) for k, v in enc.items())
    ctx.trunk = trunk
    ((steps, model, _),) = list(staged_training(ctx, w, [1]))
    assert steps == 1 and any(
        not torch.equal(v, trunk[k]) for k, v in model.state_dict().items() if k in enc
    )
