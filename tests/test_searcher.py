"""The Ray Tune searcher adapter, driven without a Ray runtime: barrier, failures,
finishing, and save/restore mid-generation reproducing the uninterrupted search."""

from __future__ import annotations

import math
from typing import Any

import pytest
from ray.tune.search import Searcher

from elo.errors import ConfigError
from elo.search.searcher import EvolutionSearcher
from elo.search.space import WeightSpace
from elo.search.strategies import make_strategy

TERMS = ("rgb/a", "rgb/b", "flow/a", "distill/flow->rgb@2")
TARGET = {"rgb/a": 0.3, "rgb/b": 0.9, "flow/a": 0.0, "distill/flow->rgb@2": 0.6}


def objective(weights: dict[str, float]) -> float:
    return -sum((weights[k] - v) ** 2 for k, v in TARGET.items())


class Log:
    """A listener keeping what a driver would write."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.summaries: list[dict[str, Any]] = []
        self.checkpoints = 0

    def evaluation(self, record: dict[str, Any]) -> None:
        self.records.append(record)

    def checkpoint(self, searcher: EvolutionSearcher) -> None:
        self.checkpoints += 1

    def generation_done(self, summary: dict[str, Any]) -> None:
        self.summaries.append(summary)


def make(
    strategy: str = "cma",
    population: int = 6,
    generations: int = 3,
    seed: int = 0,
    listener: Log | None = None,
) -> EvolutionSearcher:
    space = WeightSpace(TERMS, "clip")
    s = make_strategy(
        strategy,
        dim=space.dim,
        population=population,
        seed=seed,
        centroid=space.centre(),
        bounds=(0.0, 1.0),
    )
    return EvolutionSearcher(s, space, generations, listener=listener)


def test_barrier_then_next_generation_then_finished() -> None:
    log = Log()
    se = make(population=4, generations=2, listener=log)
    cfgs = [se.suggest(f"t{i}") for i in range(4)]
    assert [c["index"] for c in cfgs] == [0, 1, 2, 3]  # type: ignore[index]
    assert all(c["generation"] == 0 for c in cfgs)  # type: ignore[index]
    assert all(0 <= v <= 1 for c in cfgs for v in c["weights"].values())  # type: ignore[index]
    assert se.suggest("t4") is None  # barrier: the generation is handed out
    for i in range(3):
        se.on_trial_complete(f"t{i}", {"fitness": objective(cfgs[i]["weights"])})  # type: ignore[index]
        assert se.suggest(f"w{i}") is None  # still waiting for t3
    se.on_trial_complete("t3", {"fitness": -1.0})
    assert log.summaries[0]["evaluated"] == 4 and log.summaries[0]["best"] == pytest.approx(
        max(r["fitness"] for r in log.records)
    )
    nxt = [se.suggest(f"g1_{i}") for i in range(4)]
    assert all(c["generation"] == 1 for c in nxt)  # type: ignore[index]
    assert se.suggest("g1_x") is None
    for i in range(4):
        se.on_trial_complete(f"g1_{i}", {"fitness": 0.0})
    assert se.suggest("done") == Searcher.FINISHED
    assert se.suggest("done2") == Searcher.FINISHED
    assert log.checkpoints == 8 and len(log.records) == 8


def test_failed_and_nonfinite_trials_get_worst_and_generation_completes() -> None:
    log = Log()
    se = make(strategy="ga", population=4, generations=2, listener=log)
    for i in range(4):
        se.suggest(f"t{i}")
    # the trial's own error arrives as a result (search/failures.py:guarded_trial)
    se.on_trial_complete("t0", {"fitness": math.nan, "trial_error": True, "error_msg": "boom"})
    se.on_trial_complete("t1", {"fitness": math.nan})
    se.on_trial_complete("t2", {"fitness": -0.5, "seconds": 2.5, "metrics/loss": 1.0, "pid": 7})
    se.on_trial_complete("t3", {"fitness": math.inf})
    assert [r["status"] for r in log.records] == ["error", "nonfinite", "ok", "nonfinite"]
    assert [r["fitness"] for r in log.records] == [None, None, -0.5, None]
    assert log.records[2]["seconds"] == 2.5 and log.records[2]["metrics"] == {"loss": 1.0}
    assert log.summaries == [
        {"generation": 0, "best": -0.5, "median": -0.5, "evaluated": 4, "failed": 3}
    ]
    # the GA keeps the one real result as its best parent
    assert se.strategy.parents[0][1] == -0.5  # type: ignore[attr-defined]
    assert se.best is not None and se.best["fitness"] == -0.5
    assert se.suggest("next")["generation"] == 1  # type: ignore[index]


def test_trial_without_result_is_handed_out_again() -> None:
    se = make(population=4, generations=1)
    first = se.suggest("a")
    for t in "bcd":
        se.suggest(t)
    se.on_trial_complete("a", None)  # Tune removed it before it reported
    again = se.suggest("a2")
    assert again == first
    se.on_trial_complete("unknown-trial", {"fitness": 1.0})  # ignored, no crash


def drive(se: EvolutionSearcher, order: list[str], start: int = 0) -> list[tuple[int, int]]:
    """Hand out and complete trials; completes in a shuffled order within a window."""
    seen: list[tuple[int, int]] = []
    n = start
    live: list[tuple[str, dict]] = []
    while True:
        cfg = se.suggest(f"t{n}")
        if cfg == Searcher.FINISHED:
            return seen
        if cfg is not None:
            live.append((f"t{n}", cfg))
            n += 1
            if len(live) < 3:
                continue
        tid, c = live.pop(1 if len(live) > 1 else 0)
        seen.append((c["generation"], c["index"]))
        se.on_trial_complete(tid, {"fitness": objective(c["weights"])})


@pytest.mark.parametrize("strategy", ["cma", "ga"])
def test_search_through_searcher_reaches_optimum(strategy: str) -> None:
    se = make(strategy=strategy, population=12, generations=25, seed=1)
    drive(se, [])
    assert se.best is not None
    assert se.best["fitness"] > -2e-3
    assert all(abs(se.best["weights"][k] - v) < 0.05 for k, v in TARGET.items())


@pytest.mark.parametrize("strategy", ["cma", "ga"])
def test_save_restore_mid_generation_reproduces_uninterrupted(strategy: str, tmp_path: Any) -> None:
    ref = make(strategy=strategy, population=5, generations=3, seed=7)
    ref_log: list[dict] = []
    cfgs: dict[str, Any] = {}
    # uninterrupted: every config of every generation, in hand-out order
    for g in range(3):
        for i in range(5):
            cfgs[f"{g}.{i}"] = ref.suggest(f"{g}.{i}")  # type: ignore[assignment]
        for i in range(5):
            c = cfgs[f"{g}.{i}"]
            ref_log.append(c)
            ref.on_trial_complete(f"{g}.{i}", {"fitness": objective(c["weights"])})
    assert ref.suggest("end") == Searcher.FINISHED

    # interrupted in generation 1: 5 handed out, 2 finished, 3 live
    a = make(strategy=strategy, population=5, generations=3, seed=7)
    got = []
    for i in range(5):
        c = a.suggest(f"0.{i}")
        got.append(c)
        a.on_trial_complete(f"0.{i}", {"fitness": objective(c["weights"])})  # type: ignore[index]
    live = [a.suggest(f"1.{i}") for i in range(5)]
    for i in (3, 0):
        a.on_trial_complete(f"1.{i}", {"fitness": objective(live[i]["weights"])})  # type: ignore[index]
    a.save(str(tmp_path / "state.json"))

    # (1) Ray-style restore: the live trials report to the restored searcher
    b = make(strategy=strategy, population=5, generations=3, seed=12345)
    b.restore(str(tmp_path / "state.json"))
    assert b.suggest("x") is None  # still the barrier of generation 1
    for i in (4, 1, 2):
        b.on_trial_complete(f"1.{i}", {"fitness": objective(live[i]["weights"])})  # type: ignore[index]
    rest = []
    for g in (2,):
        for i in range(5):
            c = b.suggest(f"r{g}.{i}")
            rest.append(c)
        for i in range(5):
            b.on_trial_complete(f"r{g}.{i}", {"fitness": objective(rest[i]["weights"])})  # type: ignore[index]
    assert b.suggest("end") == Searcher.FINISHED
    assert got + live + rest == ref_log
    assert b.strategy.state() == ref.strategy.state()
    assert b.best == ref.best

    # (2) our resume: live individuals requeued, finished ones replayed from a log
    c2 = make(strategy=strategy, population=5, generations=3, seed=7)
    c2.restore(str(tmp_path / "state.json"))
    c2.requeue_live()
    again = [c2.suggest(f"n{i}") for i in range(3)]
    assert [x["index"] for x in again] == [1, 2, 4]  # type: ignore[index]
    assert [x["vector"] for x in again] == [live[i]["vector"] for i in (1, 2, 4)]  # type: ignore[index]


def test_replay_rebuilds_state_from_the_log_alone() -> None:
    log = Log()
    a = make(strategy="cma", population=4, generations=3, seed=3, listener=log)
    drive(a, [])
    # a fresh searcher (no saved state) replays the log and ends where `a` ended
    b = make(strategy="cma", population=4, generations=3, seed=3)
    assert b.replay(log.records) == 12
    assert b.finished and b.strategy.state() == a.strategy.state()
    # a partial log leaves the rest to be evaluated; a replayed record is not re-applied
    c = make(strategy="cma", population=4, generations=3, seed=3)
    assert c.replay(log.records[:6]) == 6
    assert c.replay(log.records[:6]) == 0
    done = sorted(c.evolution.fitness)
    assert c.generation == 1 and done == sorted(r["index"] for r in log.records[4:6])
    # a log from another seed does not match the strategy's proposals
    d = make(strategy="cma", population=4, generations=3, seed=4)
    with pytest.raises(ConfigError, match="does not match"):
        d.replay(log.records)


def test_restore_refuses_other_terms(tmp_path: Any) -> None:
    a = make()
    a.suggest("t")
    a.save(str(tmp_path / "s.json"))
    space = WeightSpace(TERMS[:3], "clip")
    other = EvolutionSearcher(make_strategy("cma", dim=3, population=6), space, 3)
    with pytest.raises(ConfigError, match="different loss terms"):
        other.restore(str(tmp_path / "s.json"))


def _search(**over: Any) -> dict[str, Any]:
    """The search section of configs/search/base.yaml with ``over`` replacing keys."""
    from elo.config import load_part

    return {**load_part("search", "base"), **over}


@pytest.mark.parametrize("name", ["cma", "ga"])
def test_config_seed_points_open_the_first_generation(name: str) -> None:
    from elo.search.settings import SearchSettings
    from elo.search.strategies import strategy_for

    cfg = {"seed": 0, "search": _search(strategy=name, population=8, seed_points=True)}
    space = WeightSpace(TERMS, "clip")
    se = EvolutionSearcher(strategy_for(SearchSettings.from_config(cfg), space), space, 2)
    first = [se.suggest(f"t{i}") for i in range(8)]
    lam = [c["weights"] for c in first]  # type: ignore[index]
    assert lam[0] == {t: 1.0 for t in TERMS}  # uniform
    # then one single-task point per task: "a" (rgb/a + flow/a), "b", "distill"
    assert lam[1] == {"rgb/a": 1.0, "rgb/b": 0.0, "flow/a": 1.0, "distill/flow->rgb@2": 0.0}
    assert lam[2] == {"rgb/a": 0.0, "rgb/b": 1.0, "flow/a": 0.0, "distill/flow->rgb@2": 0.0}
    assert lam[3] == {"rgb/a": 0.0, "rgb/b": 0.0, "flow/a": 0.0, "distill/flow->rgb@2": 1.0}
    assert all(w not in lam[:4] for w in lam[4:])  # the rest come from the strategy


def test_ga_starts_inside_the_sigmoid_box() -> None:
    from elo.search.settings import SearchSettings
    from elo.search.strategies import strategy_for

    cfg = {"seed": 0, "search": _search(strategy="ga", population=16, mapping="sigmoid")}
    space = WeightSpace(TERMS, "sigmoid")
    settings = SearchSettings.from_config(cfg)
    lam = [v for x in strategy_for(settings, space).ask() for v in space.weights(x).values()]
    assert min(lam) < 0.2 and max(lam) > 0.8 and all(0.05 <= v <= 0.95 for v in lam)


#: run in a fresh interpreter where any ``import ray`` fails (sys.modules["ray"] = None)
NO_RAY_SCRIPT = r"""
import json, sys
sys.modules["ray"] = None
from elo.search.generation import Evolution
from elo.search.space import WeightSpace
from elo.search.strategies import make_strategy

TERMS = ("rgb/a", "rgb/b", "flow/a")
TARGET = {"rgb/a": 0.3, "rgb/b": 0.9, "flow/a": 0.0}
space = WeightSpace(TERMS, "clip")

class Log:
    def __init__(self):
        self.records, self.summaries, self.checkpoints = [], [], 0
    def evaluation(self, record):
        self.records.append(record)
    def checkpoint(self, evolution):
        self.checkpoints += 1
    def generation_done(self, summary):
        self.summaries.append(summary)

def make(listener=None):
    s = make_strategy(
        "cma", dim=3, population=4, seed=5, centroid=space.centre(), bounds=(0.0, 1.0)
    )
    return Evolution(s, space, 3, listener=listener)

def fit(cfg):
    return {"fitness": -sum((cfg["weights"][k] - v) ** 2 for k, v in TARGET.items())}

def run(evo, n, start=0):
    for i in range(start, start + n):
        cfg = evo.ask(f"t{i}")
        assert cfg is not None, i
        evo.tell(f"t{i}", fit(cfg))

out = {}
ref = make(Log())
asked = [ref.ask(f"t{i}") for i in range(4)]
out["barrier"] = ref.ask("t4") is None  # the generation's four are all out
for i, cfg in enumerate(asked):
    ref.tell(f"t{i}", fit(cfg))
run(ref, 8, start=5)
out["ref"] = {"finished": ref.finished, "stopped": ref.stopped, "after_end": ref.ask("x"),
              "best": ref.best, "summaries": ref.listener.summaries,
              "checkpoints": ref.listener.checkpoints, "records": len(ref.listener.records)}

# interrupted in generation 2: two told, one running; saved, then resumed elsewhere
log = Log()
a = make(log)
run(a, 6)
running = a.ask("live")
a.save(sys.argv[1])
b = make()
b.restore(sys.argv[1])
b.requeue_live()
out["requeued"] = list(b.pending)
b.listener = Log()
out["replayed"] = b.replay(log.records)  # all six already in the state: none applied
run(b, 6, start=100)
out["resumed"] = {"finished": b.finished, "best": b.best,
                  "same_strategy": b.strategy.state() == ref.strategy.state()}
out["ray"] = sys.modules.get("ray", "missing")
print(json.dumps(out))
"""


def test_generation_bookkeeping_runs_without_ray(tmp_path: Any) -> None:
    """search/generation.py drives a whole search (ask, barrier, tell, save, resume,
    replay, best) in an interpreter where importing Ray fails."""
    import json
    import os
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", NO_RAY_SCRIPT, str(tmp_path / "state.json")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["ray"] is None  # still blocked: nothing imported Ray
    assert out["barrier"] is True
    ref = out["ref"]
    assert ref["finished"] and ref["stopped"] and ref["after_end"] is None
    assert ref["records"] == 12 and ref["checkpoints"] == 12
    assert [s["generation"] for s in ref["summaries"]] == [0, 1, 2]
    assert ref["best"]["fitness"] == max(s["best"] for s in ref["summaries"])
    assert set(ref["best"]["weights"]) == {"rgb/a", "rgb/b", "flow/a"}
    assert out["requeued"] == [2, 3]  # the running individual goes back with the untold one
    assert out["replayed"] == 0
    res = out["resumed"]
    assert res["finished"] and res["same_strategy"] and res["best"] == ref["best"]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("population", 1, "config key 'search.population' must be an integer >= 2, got 1"),
        ("generations", True, "config key 'search.generations' must be an integer >= 1, got True"),
        ("cpus_per_trial", 1.5, "config key 'search.cpus_per_trial' must be an integer >= 1"),
        (
            "trial_timeout_s",
            -1,
            "config key 'search.trial_timeout_s' must be a number > 0 or null, got -1",
        ),
        ("max_retries", -1, "config key 'search.max_retries' must be an integer >= 0, got -1"),
        ("workers", 0, "config key 'search.workers' must be an integer >= 1 or null, got 0"),
        ("heldout_split", "test", "config key 'search.heldout_split' is 'test'"),
        (
            "heldout_fraction",
            1.0,
            "config key 'search.heldout_fraction' must be a number in (0, 1), got 1.0",
        ),
        ("heldout_bn", "stale", "config key 'search.heldout_bn' must be one of"),
        ("populaton", 4, "unknown config key 'search.populaton' (did you mean 'population'?)"),
    ],
)
def test_search_settings_refuse_bad_values_naming_the_key(
    key: str, value: Any, message: str
) -> None:
    import re

    from elo.search.settings import SearchSettings

    with pytest.raises(ConfigError, match=re.escape(message)):
        SearchSettings.from_config({"search": _search(**{key: value})})


def test_search_settings_are_frozen_with_the_defaults_of_the_base_file() -> None:
    """Every field of SearchSettings is a key of configs/search/base.yaml and the other
    way round; the values parsed are those of the file."""
    from dataclasses import FrozenInstanceError, fields

    from elo.config import load_part
    from elo.search.settings import SearchSettings

    base = load_part("search", "base")
    s = SearchSettings.from_config({"search": _search(population=8, ga={"tournament": 2})})
    assert {f.name for f in fields(s)} == set(base)
    assert (s.strategy, s.population, s.generations, s.total) == ("cma", 8, 4, 32)
    assert (s.sigma, s.mapping, s.steps, s.workers, s.trial_timeout_s) == (
        0.3,
        "clip",
        None,
        None,
        None,
    )
    assert (s.heldout_split, s.heldout_fraction, s.heldout_bn) == ("train", 0.2, "recalibrate")
    assert (s.memory_per_trial_gb, s.max_retries, dict(s.ga)) == (2.0, 2, {"tournament": 2})
    with pytest.raises(FrozenInstanceError):
        s.population = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.ga["tournament"] = 5  # type: ignore[index]
    with pytest.raises(ConfigError, match=r"missing config key 'search.rungs'"):
        SearchSettings.from_config({"search": {k: v for k, v in base.items() if k != "rungs"}})


def test_cli_parses_the_search_settings_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """elo-search validates the settings before creating the run directory and hands the
    same frozen object to the driver: one parse per command."""
    import elo.search.run
    from elo.search.cli import main
    from elo.search.settings import SearchSettings

    calls: list[int] = []
    parse = SearchSettings.from_config.__func__  # type: ignore[attr-defined]

    def counted(cls: type[SearchSettings], cfg: Any) -> SearchSettings:
        calls.append(1)
        return parse(cls, cfg)  # type: ignore[no-any-return]

    seen: dict[str, Any] = {}

    def driver(cfg: Any, run_dir: Any, **kw: Any) -> dict[str, Any]:
        seen.update(kw, run_dir=run_dir)
        return {"finished": True}

    monkeypatch.setattr(SearchSettings, "from_config", classmethod(counted))
    monkeypatch.setattr(elo.search.run, "run_search", driver)
    out = tmp_path / "run"
    args = ["--fitness", "synthetic", "--population", "3", "--out", str(out), "search.sigma=0.5"]
    assert main(args) == 0
    assert calls == [1] and seen["run_dir"] == str(out) and (out / "config.yaml").exists()
    assert (seen["settings"].population, seen["settings"].sigma) == (3, 0.5)
    assert main([*args[:-3], str(tmp_path / "bad"), "search.workers=0"]) == 2  # one line, exit 2
    assert not (tmp_path / "bad").exists()  # refused before anything was created
