"""Population-based search without Ray (search/pbt_settings.py, pbt_scheduler.py,
pbt_log.py) and λ schedule files (elo/model/objective.py): settings refused with the
key named, rejected members never copied, explore clipped to [0, 1], lineage and
schedule read back from a log, and ``elo-train --weights SCHEDULE`` applying each λ
at its steps."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from elo.errors import ConfigError
from elo.model.objective import (
    Weights,
    WeightSchedule,
    load_weights_file,
    terms_from_config,
)
from elo.rundir import read_jsonl
from elo.search.pbt_log import best_final, lineage, schedule_of
from elo.search.pbt_settings import PBTSettings, clip_lambdas, from_config


def _base() -> dict[str, Any]:
    """The ``search.pbt`` block of configs/search/base.yaml (where its defaults live)."""
    from elo.config import load_part

    return dict(load_part("search", "base")["pbt"])


def test_pbt_settings_come_from_configs_search_base_yaml() -> None:
    """The defaults fit two cores; cma and ga take the block of base.yaml unchanged, and
    every experiment's parsed search settings carry it."""
    from elo.config import load_config, load_part
    from elo.search.settings import SearchSettings

    base = _base()
    s = PBTSettings.from_section(base)
    assert (s.population, s.steps, s.interval, s.intervals) == (4, 300, 50, 6)
    assert (s.quantile, s.resample_probability, s.perturbation_factors) == (0.25, 0.25, (1.2, 0.8))
    for name in ("cma", "ga"):
        assert load_part("search", name)["pbt"] == base
    assert SearchSettings.from_config(load_config("demo")).pbt == s
    assert PBTSettings.from_section({**base, "steps": 7, "interval": 3}).intervals == 3
    assert PBTSettings.from_section({**base, "resample_probability": 0}).resample_probability == 0


def test_a_pbt_section_without_a_key_is_refused_naming_the_key_and_the_defaults() -> None:
    for key in _base():
        section = _base()
        del section[key]
        with pytest.raises(ConfigError) as err:
            PBTSettings.from_section(section)
        msg = str(err.value)
        assert f"missing config key 'search.pbt.{key}'" in msg, msg
        assert "configs/search/base.yaml holds the defaults" in msg and "\n" not in msg
    with pytest.raises(ConfigError, match="'search.pbt' must be a mapping"):
        PBTSettings.from_section(None)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            {"popultion": 4},
            "unknown config key 'search.pbt.popultion' (did you mean 'population'?)",
        ),
        ({"population": 1}, "'search.pbt.population' must be an integer >= 2, got 1"),
        ({"interval": 300}, "'search.pbt.interval' (300) must be below search.pbt.steps (300)"),
        ({"quantile": 0.6}, "'search.pbt.quantile' must be a number in (0, 0.5], got 0.6"),
        ({"quantile": 0}, "'search.pbt.quantile' must be a number in (0, 0.5], got 0"),
        ({"resample_probability": "x"}, "'search.pbt.resample_probability' must be a number"),
        ({"resample_probability": 1.5}, "'search.pbt.resample_probability' must be a number in"),
        ({"perturbation_factors": [1.2, -1]}, "'search.pbt.perturbation_factors' must be a list"),
        ({"perturbation_factors": []}, "'search.pbt.perturbation_factors' must be a non-empty"),
        ({"steps": True}, "'search.pbt.steps' must be an integer >= 1, got True"),
    ],
)
def test_pbt_settings_refuse_bad_values_naming_the_key(
    section: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        PBTSettings.from_section({**_base(), **section})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_cli_routes_population_and_steps_to_the_pbt_section() -> None:
    from elo.search.cli import _FLAGS, resolve_config
    from elo.search.settings import SearchSettings

    def args(**kw: Any) -> argparse.Namespace:
        base = {**dict.fromkeys(_FLAGS), "overrides": [], "config": "demo"}
        return argparse.Namespace(**{**base, **kw})

    cfg = resolve_config(args(strategy="pbt", population=3, steps=400))
    s = SearchSettings.from_config(cfg)
    assert s.strategy == "pbt" and s.population == 64 and s.steps == 20  # untouched
    assert (s.pbt.population, s.pbt.steps) == (3, 400)
    cma = SearchSettings.from_config(resolve_config(args(population=3, steps=40)))
    assert (cma.population, cma.steps, cma.pbt.population, cma.pbt.steps) == (3, 40, 4, 300)


@pytest.mark.parametrize("kind", ["synthetic", "faulty_synthetic"])
def test_pbt_refuses_a_fitness_that_scores_lambda_itself(tmp_path: Path, kind: str) -> None:
    """PBT trains its members: a fitness kind that scores λ itself (``scores_weights``:
    the shipped synthetic stand-in, or the test plug-in built on it) is refused in one
    line before any data is prepared or Ray is started."""
    from elo.config import load_config
    from elo.search.pbt import run_pbt
    from elo.search.settings import FitnessSettings, SearchSettings, fitness_section

    cfg = load_config("demo", ["search.strategy=pbt"])
    cfg["fitness"] = {**fitness_section("synthetic"), "kind": kind}
    cfg["data"]["root"] = str(tmp_path / "absent")
    settings, fitness = SearchSettings.from_config(cfg), FitnessSettings.from_config(cfg)
    assert not fitness.trains
    with pytest.raises(ConfigError) as err:
        run_pbt(cfg, tmp_path / "run", settings, fitness, resume=False, address=None, workers=1)
    msg = str(err.value)
    assert f"the {kind} fitness scores λ without training" in msg and "\n" not in msg
    assert list(tmp_path.iterdir()) == []  # nothing prepared, no run folder


def test_rejected_members_are_always_replaced_and_never_copied() -> None:
    from elo.search.pbt_scheduler import guard_quantiles

    # Tune's quantiles of 8 members, worst first; d and g were rejected
    lower, upper = ["a", "b"], ["g", "h"]
    assert guard_quantiles(lower, upper, ["d", "g"]) == (["d", "g", "a", "b"], ["h"])
    assert guard_quantiles(lower, upper, []) == (lower, upper)
    assert guard_quantiles(["a"], ["b"], ["b"]) == ([], [])  # nobody healthy to copy


def test_explore_is_clipped_to_the_unit_box_and_lambdas_travel_by_index() -> None:
    cfg = {"l00": 1.2, "l01": -0.1, "l02": 0.5, "other": 7.0}
    assert clip_lambdas(cfg) == {"l00": 1.0, "l01": 0.0, "l02": 0.5, "other": 7.0}
    assert from_config({"l01": 0.25, "l00": 0.75, "l02": 0.0}, 2) == [0.75, 0.25]


def test_a_report_becomes_one_json_line_without_non_finite_values() -> None:
    import math

    from elo.search.pbt_log import record_of

    result = {
        "fitness": -1e9,
        "step": 4,
        "interval": 2,
        "member": 3,
        "parent_member": 0,
        "parent_interval": 1,
        "rejected": "nonfinite",
        "lam": [0.5, 1.0],
        "final_loss": math.nan,
        "embedding_std": 0.2,
        "details": {"sizes": [3, 1]},
        "error_msg": "non-finite loss",
        "trial_id": "ab_00003",
        "seconds": 1.5,
    }
    rec = record_of(result, ["a", "b"])
    assert rec["weights"] == {"a": 0.5, "b": 1.0} and rec["status"] == "nonfinite"
    assert rec["parent"] == {"member": 0, "interval": 1} and rec["copied"]
    assert rec["metrics"] == {"embedding_std": 0.2} and rec["trial_id"] == "ab_00003"
    assert rec["error"] == "non-finite loss" and rec["details"] == {"sizes": [3, 1]}
    json.dumps(rec, allow_nan=False)


def _rec(m: int, k: int, parent: tuple[int, int] | None, lam: float, fit: float) -> dict[str, Any]:
    p = None if parent is None else {"member": parent[0], "interval": parent[1]}
    copied = parent is not None and parent[0] != m
    return {
        "member": m,
        "interval": k,
        "step": 2 * k,
        "weights": {"t": lam},
        "fitness": fit,
        "status": "ok",
        "parent": p,
        "copied": copied,
    }


def test_lineage_and_schedule_follow_the_copies() -> None:
    recs = [
        _rec(0, 1, None, 0.1, 1.0),
        _rec(1, 1, None, 0.9, 2.0),
        _rec(0, 2, (1, 1), 0.72, 3.0),
        _rec(1, 2, (1, 1), 0.9, 2.5),
        _rec(0, 3, (0, 2), 0.72, 3.5),
        _rec(1, 3, (0, 2), 0.576, 4.0),
    ]
    best = best_final(recs, 3)
    assert best is not None and best["member"] == 1
    chain = lineage(recs, 1, 3)
    assert [(r["member"], r["interval"]) for r in chain] == [(1, 1), (0, 2), (1, 3)]
    assert schedule_of(chain, 2) == [(0, {"t": 0.9}), (2, {"t": 0.72}), (4, {"t": 0.576})]
    with pytest.raises(KeyError, match="member 0, interval 2"):
        lineage(recs[:2] + recs[4:], 1, 3)


TERMS = ["rgb/reconstruction", "rgb/temporal_order"]


def _schedule_doc() -> dict[str, Any]:
    return {
        "schedule": [
            {"from_step": 0, "weights": {TERMS[0]: 0.8, TERMS[1]: 0.2}},
            {"from_step": 2, "weights": {TERMS[0]: 0.0, TERMS[1]: 0.6}},
            {"from_step": 4, "weights": {TERMS[0]: 0.5, TERMS[1]: 1.0}},
        ],
        "strategy": "pbt",
    }


def _cfg() -> dict[str, Any]:
    from test_tasks import tiny_cfg

    cfg = tiny_cfg()
    cfg["objective"].update(modalities=["rgb"], tasks=["reconstruction", "temporal_order"])
    cfg["train"].update(steps=6, batch_size=2, lr=0.003, warmup_steps=0)
    cfg["seed"] = 0
    return cfg


def test_schedule_file_switches_at_its_steps_and_refuses_bad_files(tmp_path: Path) -> None:
    terms = terms_from_config(_cfg())
    assert [str(t) for t in terms] == TERMS
    path = tmp_path / "s.json"
    path.write_text(json.dumps(_schedule_doc()))
    sched = load_weights_file(path, terms)
    assert isinstance(sched, WeightSchedule)
    assert [sched.at(s).values[TERMS[1]] for s in range(7)] == [0.2, 0.2, 0.6, 0.6, 1, 1, 1]
    assert sched.union.values == {TERMS[0]: 0.8, TERMS[1]: 1.0}
    plain = tmp_path / "w.json"
    plain.write_text(json.dumps({"weights": {TERMS[0]: 0.3, TERMS[1]: 0.4}}))
    assert isinstance(load_weights_file(plain, terms), Weights)
    bad = _schedule_doc()
    bad["schedule"][1]["from_step"] = 5
    for doc, msg in [
        (bad, "schedule steps must start at 0 and increase, got from_step [0, 5, 4]"),
        ({"schedule": []}, 'expected {"schedule": [{"from_step": 0'),
        ({"schedule": [{"from_step": 0, "weights": {TERMS[0]: 2.0, TERMS[1]: 0}}]}, "outside"),
    ]:
        path.write_text(json.dumps(doc))
        with pytest.raises(ConfigError) as err:
            load_weights_file(path, terms)
        assert str(path) in str(err.value) and msg in str(err.value)


def test_elo_train_replays_a_schedule_applying_each_lambda_at_its_steps(tmp_path: Path) -> None:
    """``elo-train --weights SCHEDULE``: the λ logged at every step is the schedule's,
    the loss uses it (each weighted term is λ · raw / scale), and a term at λ = 0
    in one interval contributes nothing there but comes back after."""
    from _scripts import main_of
    from test_tasks import write_clips

    train_main = main_of("train")
    data = write_clips(tmp_path / "videos", 4, seed=2)
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(_cfg()))
    sched = tmp_path / "best_schedule.json"
    sched.write_text(json.dumps(_schedule_doc()))
    out = tmp_path / "run"
    rc = train_main(
        [
            "--config",
            str(tmp_path / "exp.yaml"),
            "--data",
            str(data),
            "--out",
            str(out),
            "--no-progress",
            "--weights",
            str(sched),
            "--steps",
            "6",
        ]
    )
    assert rc == 0
    log = list(read_jsonl(out / "train_log.jsonl"))
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]
    want = WeightSchedule.from_doc(_schedule_doc(), terms_from_config(_cfg()), sched)
    for r in log:
        lam = want.at(r["step"] - 1).values
        assert {t: r[f"lambda/{t}"] for t in TERMS} == lam
        for t in TERMS:
            assert r[f"weighted/{t}"] == pytest.approx(
                lam[t] * r[f"raw/{t}"] / r[f"scale/{t}"], rel=1e-5, abs=1e-9
            )
    assert log[2][f"weighted/{TERMS[0]}"] == 0.0 and log[4][f"weighted/{TERMS[0]}"] > 0
    import elo

    enc = elo.load_encoder(out)  # the export of a schedule run loads like any other
    assert enc.export_info["meta"]["weights"] == {TERMS[0]: 0.8, TERMS[1]: 1.0}
