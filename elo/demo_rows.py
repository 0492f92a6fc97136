"""The rows of the demo's comparison table (elo/demo.py): what each row trains and
exports, how it is evaluated, and the table."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from elo.demo_options import (
    FINAL_OVERRIDES,
    LONGEST_FIRST,
    LR_GRID,
    LR_GRID_FRACTION,
    PROBES,
    RAW_RGB,
    DemoOptions,
)
from elo.demo_run import _bin, _run, row_env
from elo.rundir import atomic_write_json, read_jsonl


class ProbeFeatureEncoder(torch.nn.Module):
    """Parameter-free features of a clip ``B,3,T,H,W`` for the shortcut probes:

    * ``frame``: the middle frame's pixels, pooled to 8x8 (appearance at one instant);
    * ``timemean``: the time-mean image pooled to 8x8 (the static scene and the
      object's smear): with both near chance the action is not in appearance;
    * ``motion``: hand-made motion statistics, per cell of a 4x4 grid: mean |frame
      difference| and the Lucas-Kanade flow (u, v) (:class:`elo.evaluation.evaluate.PixelStatsEncoder`
      without its colour means).
    """

    def __init__(self, kind: str = "frame") -> None:
        super().__init__()
        if kind not in ("frame", "timemean", "motion"):
            raise ValueError(f"unknown probe features {kind!r}")
        self.kind = kind
        self.embed_dim = 3 * 16 if kind == "motion" else 3 * 64
        self.pyramid_channels = (self.embed_dim,)

    def forward(self, x: torch.Tensor) -> Any:
        from elo.evaluation.evaluate import PixelStatsEncoder
        from elo.model.heads import EncoderOutput

        f = torch.nn.functional
        if self.kind == "frame":
            emb = f.adaptive_avg_pool2d(x[:, :, x.shape[2] // 2], 8).flatten(1)
        elif self.kind == "timemean":
            emb = f.adaptive_avg_pool2d(x.mean(dim=2), 8).flatten(1)
        else:
            emb = PixelStatsEncoder(in_channels=x.shape[1], grid=4)(x).embedding[:, -48:]
        return EncoderOutput(pyramid=[emb[:, :, None, None, None]], embedding=emb)


def build_probe_encoder(*, kind: str = "frame") -> ProbeFeatureEncoder:
    """Builder of :class:`ProbeFeatureEncoder` (exportable: ``elo.demo:build_probe_encoder``)."""
    return ProbeFeatureEncoder(kind)


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


def export_pixel_stats(out: Path, kind: str = "pixels") -> None:
    """A parameter-free reference encoder: ``pixels`` (mean colour per cell, motion
    energy, Lucas-Kanade flow per cell) or a :class:`ProbeFeatureEncoder` kind: what a
    probe can read from the clips without learning."""
    from elo.evaluation.evaluate import PIXEL_STATS_BUILDER, build_pixel_stats_encoder
    from elo.train.export import save_encoder

    if kind == "pixels":
        enc: torch.nn.Module = build_pixel_stats_encoder()
        builder, kwargs = PIXEL_STATS_BUILDER, {}
    else:
        enc, builder, kwargs = (
            build_probe_encoder(kind=kind),
            "elo.demo:build_probe_encoder",
            {"kind": kind},
        )
    save_encoder(out, enc, builder=builder, kwargs=kwargs, input_info={"modality": "rgb"})


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


def contender_table(o: DemoOptions, search: Path) -> dict[str, tuple[str, list[str]]]:
    """Step 3's rows: key -> (table name, extra ``elo-train`` arguments, or ``--pixels``
    for a parameter-free encoder); writes the weights files the rows train with. Besides
    the :data:`CONTENDERS` rows it holds the oracle's other candidates ``single_2`` ...
    (:func:`single_keys`); the ``oracle`` row itself is picked from them after probing."""
    weights_dir = o.run / "weights"
    weights_dir.mkdir(parents=True, exist_ok=True)
    evolved = json.loads((search / "best_weights.json").read_text())
    uniform = {"weights": {k: 1.0 for k in evolved["weights"]}}
    atomic_write_json(weights_dir / "uniform.json", uniform)
    all_terms = ["objective.exclude=[]"]  # the weights files below list every term
    for key, term in (("supervised", "rgb/supervised"), ("clip_byol", "rgb/byol"),
                      ("clip_simsiam", "rgb/simsiam")):  # fmt: skip
        atomic_write_json(weights_dir / f"{key}.json", single_term_weights(o.config, term))
    table: dict[str, tuple[str, list[str]]] = {
        "frame": ("single-frame pixels (appearance, no training)", ["--pixels"]),
        "timemean": ("time-mean image (appearance, no training)", ["--pixels"]),
        "motion": ("motion statistics (hand-made, no training)", ["--pixels"]),
        "pixels": ("pixel statistics (hand-made, no training)", ["--pixels"]),
        "supervised": (
            "supervised control (labels, same encoder and budget)",
            ["--weights", str(weights_dir / "supervised.json"), *all_terms],
        ),
        "clip_byol": (
            "BYOL (clip-level head on the video encoder, rgb/byol)",
            ["--weights", str(weights_dir / "clip_byol.json"), *all_terms],
        ),
        "clip_simsiam": (
            "SimSiam (clip-level head on the video encoder, rgb/simsiam)",
            ["--weights", str(weights_dir / "clip_simsiam.json"), *all_terms],
        ),
        "random": ("random init", ["--steps", "0"]),
        "uniform": ("uniform λ", ["--weights", str(weights_dir / "uniform.json")]),
        **weighting_rows(o, weights_dir / "uniform.json"),
        "byol": ("BYOL (frames)", ["--objective", "byol", *baseline_overrides("byol")]),
        "simsiam": ("SimSiam (frames)", ["--objective", "simsiam", *baseline_overrides("simsiam")]),
        "evolved": ("evolved λ (ELo)", ["--weights", str(search / "best_weights.json")]),
    }
    ranked = ranked_single_tasks(search)[: o.oracle_k]
    for i, (key, (task, weights)) in enumerate(
        zip(single_keys(len(ranked)), ranked, strict=True), 1
    ):
        atomic_write_json(weights_dir / f"{key}.json", {"weights": weights})
        name = (
            f"best single task by fitness ({task})"
            if i == 1
            else f"single task #{i} by fitness ({task})"
        )
        table[key] = (name, ["--weights", str(weights_dir / f"{key}.json")])
    return table


def weighting_rows(o: DemoOptions, uniform: Path) -> dict[str, tuple[str, list[str]]]:
    """The weighting baselines over the evolved row's terms (elo/train/weighting.py):
    uniform λ with its lr picked on :data:`LR_GRID` (label-free, elo/train/lrgrid.py; the
    grid costs 3 x ``final_steps // 10`` extra steps), RLW and uncertainty weighting."""
    w = ["--weights", str(uniform)]
    grid = ["--lr-grid", LR_GRID, "--lr-grid-steps", str(max(2, o.final_steps // LR_GRID_FRACTION))]
    return {
        "uniform_tuned": ("uniform λ (tuned lr)", [*w, "--weighting", "uniform", *grid]),
        "rlw": ("RLW (random loss weighting)", [*w, "--weighting", "rlw"]),
        "uncertainty": ("uncertainty weighting", [*w, "--weighting", "uncertainty"]),
    }


def contender_row(o: DemoOptions, key: str, name: str, extra: list[str]) -> dict[str, Any]:
    """Steps 3 and 4 for one row: train (or export) its encoder unless it exists, then
    probe it for both labels; the row of the comparison table. The commands' output goes
    to ``RUN/logs/<key>.log``; they run with :attr:`DemoOptions.row_threads` threads."""
    out = o.run / "models" / key
    log, env = o.row_log(key), row_env(o.row_threads)
    baseline = "--objective" in extra
    encoder_dir = out / "final" if baseline else out  # baselines export into final/
    reused = True
    if extra == ["--pixels"]:
        if not (encoder_dir / "encoder.yaml").exists():
            export_pixel_stats(encoder_dir, key)
            reused = False
    elif not (encoder_dir / "encoder.yaml").exists():
        steps = [] if "--steps" in extra else ["--steps", str(o.final_steps)]
        conf = [] if baseline else o.cfg  # baselines read configs/baseline/<name>.yaml
        opts = [] if baseline else ["--no-progress", *FINAL_OVERRIDES]
        _run([_bin("elo-train"), *conf, "--data", str(o.data), *steps, *o.seed_args,
              "--out", str(out), *opts, *extra], log, env=env, echo=False)  # fmt: skip
        reused = False
    row: dict[str, Any] = {"key": key, "model": name, "dir": str(encoder_dir)}
    # "identity" holds the nuisance probe's results, whichever column it reads
    for field_, label in (("label", "label"), ("identity", o.nuisance_label)):
        ev = out / f"eval-{label}"
        if not (ev / "results.json").exists():
            raw = [RAW_RGB] if key in PROBES else []  # appearance probes: uncentred RGB
            _run([_bin("elo-eval"), "--encoder", str(encoder_dir), "--data", str(o.data),
                  *o.cfg, "--protocol", "linear", "--label", label, "--out", str(ev),
                  *o.seed_args, *raw], log, env=env, echo=False)  # fmt: skip
            reused = False
        row[field_] = json.loads((ev / "results.json").read_text())
    row["reused"] = reused
    return row


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


def rows_to_run(o: DemoOptions, table: Mapping[str, Any]) -> list[str]:
    """The rows to train and probe, longest first (:data:`LONGEST_FIRST`): the chosen
    contenders the table has, and the oracle's candidates when ``oracle`` is chosen."""
    keys = [k for k in o.contenders if k in table]
    if "oracle" in o.contenders:
        keys += [k for k in single_keys(o.oracle_k) if k in table and k not in keys]

    def order(key: str) -> int:
        base = "single" if key.startswith("single") else key
        return LONGEST_FIRST.index(base) if base in LONGEST_FIRST else len(LONGEST_FIRST)

    return sorted(keys, key=order)  # stable: single, single_2, ... keep their order


def comparison_table(
    rows: list[dict[str, Any]],
    *,
    final_steps: int,
    seed: int,
    meta: Mapping[str, Any] | None = None,
) -> str:
    """The comparison as Markdown: one line per row (a reused row shows its seconds as
    ``reused``), then the date, machine and timing of ``meta`` and the oracle's
    candidates when there are."""
    nuisance = (meta or {}).get("nuisance_label", "identity")
    lines = [
        f"Demo test split, linear probe, {final_steps} training steps per model, seed {seed}.",
    ]
    if meta:
        m = meta["machine"]
        lines.append(
            f"Run {meta['date']} on {m['cores']} cores ({m['cpu']}), load average "
            f"{m['load']} at the start and {m['load_end']} at the end; dataset style "
            f"{meta['style']}; rows {meta['jobs']} at a time, {meta['threads_per_row']} "
            f"torch thread(s) each."
        )
    lines += [
        "",
        f"| model | action top-1 | action balanced acc | {nuisance} top-1 (nuisance) "
        "| seconds (train + eval) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:  # seconds: this invocation's train + eval
        secs = "reused" if r.get("reused") else f"{r.get('seconds', float('nan')):.0f}"
        lines.append(
            f"| {r['model']} | {r['label']['top1']:.3f} | "
            f"{r['label']['balanced_accuracy']:.3f} | {r['identity']['top1']:.3f} | {secs} |"
        )
    for r in rows:
        if r.get("candidates"):
            picks = ", ".join(
                f"#{c['fitness_rank']} {c['task']} {c['top1']:.3f}" for c in r["candidates"]
            )
            lines += ["", f"Oracle candidates (fitness rank, task, action top-1): {picks}."]
    if meta:
        s = meta["seconds"]
        lines += [
            "",
            f"Seconds: data {s['data']:.0f}, search {s['search']:.0f}, rows {s['rows']:.0f} "
            f"(wall), total {s['total'] / 60:.1f} min.",
        ]
    return "\n".join(lines) + "\n"
