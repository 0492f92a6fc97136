"""The rows of the demo table: what each trains (:func:`contender_table`), the single
tasks ranked by the search's rule (:func:`ranked_single_tasks`) and the oracle picked
among them by the test probe (:func:`oracle_row`); docs/demo.md describes every row."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from elo.demo.options import DemoOptions
from elo.rundir import atomic_write_json, read_jsonl

#: the tuned-uniform row's learning rates (x1/4, x1, x4 the final lr of configs/train/final.yaml)
LR_GRID = "0.0005,0.002,0.008"
LR_GRID_FRACTION = 10  # each grid lr trains final_steps // 10 steps (elo/train/lrgrid.py)
#: rows trained with one term on, over every registered term: key -> term
ONE_TERM_ROWS = {
    "supervised": "rgb/supervised",
    "clip_byol": "rgb/byol",
    "clip_simsiam": "rgb/simsiam",
}
#: the rows exported untrained: parameter-free encoders (:func:`export_pixel_stats`)
PIXEL_ROWS = {
    "frame": "single-frame pixels (appearance, no training)",
    "timemean": "time-mean image (appearance, no training)",
    "motion": "motion statistics (hand-made, no training)",
    "pixels": "pixel statistics (hand-made, no training)",
}
#: the one-term rows' table names
ONE_TERM_NAMES = {
    "supervised": "supervised control (labels, same encoder and budget)",
    "clip_byol": "BYOL (clip-level head on the video encoder, rgb/byol)",
    "clip_simsiam": "SimSiam (clip-level head on the video encoder, rgb/simsiam)",
}

Table = dict[str, tuple[str, list[str]]]


def ranked_single_tasks(search_dir: Path) -> list[tuple[str, dict[str, float]]]:
    """The single-task seed points of the search, one per task, best first by the
    search's own rule (docs/search.md): highest rung reached, then (label-free) fitness;
    the earlier record wins a tie."""
    from elo.model.terms import TermKey

    best: dict[str, tuple[tuple[int, float, int], dict[str, float]]] = {}
    for n, rec in enumerate(read_jsonl(search_dir / "evaluations.jsonl")):
        if rec.get("status") != "ok" or not isinstance(rec.get("weights"), dict):
            continue
        on = {TermKey.parse(k).task for k, v in rec["weights"].items() if v > 1e-6}
        if len(on) != 1:
            continue
        task = on.pop()
        rank = (int(rec.get("rung", 0) or 0), float(rec["fitness"]), -n)
        if task not in best or rank > best[task][0]:
            best[task] = (rank, rec["weights"])
    order = sorted(best.items(), key=lambda kv: kv[1][0], reverse=True)
    return [(task, weights) for task, (_, weights) in order]


def best_single_task(search_dir: Path) -> tuple[str, dict[str, float]] | None:
    """The single-task seed point with the best fitness (:func:`ranked_single_tasks`)."""
    ranked = ranked_single_tasks(search_dir)
    return ranked[0] if ranked else None


def single_keys(n: int) -> list[str]:
    """Row keys of the ``n`` fittest single tasks: ``single`` (the fitness's pick, a
    table row), then ``single_2`` ... (the oracle's other candidates)."""
    return ["single", *(f"single_{i}" for i in range(2, n + 1))][: max(0, n)]


def single_term_weights(config: str, key: str) -> dict[str, Any]:
    """A weights file with only ``key`` on, over every registered term (the config's
    objective with nothing excluded: supervised, rgb/byol, rgb/simsiam are rows)."""
    from elo.config import load_config
    from elo.model.objective import terms_from_config

    terms = terms_from_config(load_config(config, ["objective.exclude=[]"]))
    return {"weights": {str(t): float(str(t) == key) for t in terms}}


def baseline_overrides(objective: str) -> list[str]:
    """Frame baselines sized like the demo's video model: the train split only, small CNN,
    64 frames a step (8 clips x 8 frames), heads scaled down from the paper's."""
    heads = (
        ["byol.hidden_dim=256", "byol.proj_dim=64"]
        if objective == "byol"
        else ["simsiam.proj_dim=128", "simsiam.pred_dim=32"]
    )
    return [
        "data.split=train",
        "data.image_size=32",
        "encoder.arch=small_cnn",
        "train.batch_size=64",
        "train.checkpoint_every=0",
        *heads,
    ]


def weighting_rows(o: DemoOptions, uniform: Path) -> Table:
    """The weighting baselines over the evolved row's terms (elo/train/weighting.py):
    uniform λ with its lr picked on :data:`LR_GRID` (label-free, elo/train/lrgrid.py; the
    grid costs 3 x ``final_steps // 10`` extra steps), RLW and uncertainty weighting."""
    w = ["--weights", str(uniform)]
    grid_steps = max(2, o.final_steps // LR_GRID_FRACTION)
    grid = ["--lr-grid", LR_GRID, "--lr-grid-steps", str(grid_steps)]
    return {
        "uniform_tuned": ("uniform λ (tuned lr)", [*w, "--weighting", "uniform", *grid]),
        "rlw": ("RLW (random loss weighting)", [*w, "--weighting", "rlw"]),
        "uncertainty": ("uncertainty weighting", [*w, "--weighting", "uncertainty"]),
    }


def _one_term_rows(o: DemoOptions, weights_dir: Path) -> Table:
    """The rows that train one term (:data:`ONE_TERM_ROWS`), their weights files written;
    the files list every term, so the rows train with nothing excluded."""
    table: Table = {}
    for key, term in ONE_TERM_ROWS.items():
        atomic_write_json(weights_dir / f"{key}.json", single_term_weights(o.config, term))
        extra = ["--weights", str(weights_dir / f"{key}.json"), "objective.exclude=[]"]
        table[key] = (ONE_TERM_NAMES[key], extra)
    return table


def _single_task_rows(o: DemoOptions, search: Path, weights_dir: Path) -> Table:
    """``single`` (the fittest single task) and the oracle's other candidates
    ``single_2`` ... (:func:`single_keys`), their weights files written."""
    table: Table = {}
    ranked = ranked_single_tasks(search)[: o.oracle_k]
    for i, (key, (task, weights)) in enumerate(
        zip(single_keys(len(ranked)), ranked, strict=True), 1
    ):
        atomic_write_json(weights_dir / f"{key}.json", {"weights": weights})
        rank = "best single task" if i == 1 else f"single task #{i}"
        extra = ["--weights", str(weights_dir / f"{key}.json")]
        table[key] = (f"{rank} by fitness ({task})", extra)
    return table


def contender_table(o: DemoOptions, search: Path) -> Table:
    """Step 3's rows: key -> (table name, extra ``elo-train`` arguments, or ``--pixels``
    for a parameter-free encoder); writes the weights files the rows train with. Besides
    the :data:`~elo.demo.options.CONTENDERS` rows it holds the oracle's other candidates
    ``single_2`` ... (:func:`single_keys`); the ``oracle`` row itself is picked from them
    after probing (:func:`oracle_row`)."""
    weights_dir = o.run / "weights"
    weights_dir.mkdir(parents=True, exist_ok=True)
    evolved = json.loads((search / "best_weights.json").read_text())
    uniform = {"weights": {k: 1.0 for k in evolved["weights"]}}
    atomic_write_json(weights_dir / "uniform.json", uniform)
    byol, simsiam = baseline_overrides("byol"), baseline_overrides("simsiam")
    return {
        **{key: (name, ["--pixels"]) for key, name in PIXEL_ROWS.items()},
        **_one_term_rows(o, weights_dir),
        "random": ("random init", ["--steps", "0"]),
        "uniform": ("uniform λ", ["--weights", str(weights_dir / "uniform.json")]),
        **weighting_rows(o, weights_dir / "uniform.json"),
        "byol": ("BYOL (frames)", ["--objective", "byol", *byol]),
        "simsiam": ("SimSiam (frames)", ["--objective", "simsiam", *simsiam]),
        "evolved": ("evolved λ (ELo)", ["--weights", str(search / "best_weights.json")]),
        **_single_task_rows(o, search, weights_dir),
    }


def oracle_row(
    rows: Mapping[str, dict[str, Any]], candidates: Sequence[str], shown: Sequence[str] = ()
) -> dict[str, Any]:
    """The ``oracle`` row: of the probed single-task ``candidates`` (fittest first), the
    one with the best action top-1 on the test split (the earlier one on a tie). It
    reads the test labels, so it bounds what picking one of them could give; it is no
    label-free method. Its seconds are those of the candidates not ``shown`` as rows."""
    probed = [rows[k] for k in candidates]
    best = max(probed, key=lambda r: float(r["label"]["top1"]))
    return {
        "key": "oracle",
        "model": f"oracle: best of the {len(probed)} fittest single tasks by test probe "
        f"({best['task']})",
        "dir": best["dir"],
        "label": best["label"],
        "identity": best["identity"],
        "task": best["task"],
        "picked": best["key"],
        "candidates": [
            {"key": r["key"], "task": r["task"], "fitness_rank": i, "top1": r["label"]["top1"]}
            for i, r in enumerate(probed, 1)
        ],
        "seconds": sum(float(r.get("seconds", 0.0)) for r in probed if r["key"] not in shown),
        "reused": all(r.get("reused", False) for r in probed),
    }
