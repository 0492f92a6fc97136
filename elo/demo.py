"""``make demo``: the whole method on the built-in demo dataset, in one command.

1. make the demo dataset (``elo-data demo``) and cache its modalities (``elo-extract``):
   :func:`make_data`;
2. evolve the loss (``elo-search --population 64`` with the demo profile): :func:`evolve`;
3. train, at one shared step budget, the evolved loss, uniform weights (also with its
   learning rate tuned on a grid, and the RLW and uncertainty weightings of
   elo/train/weighting.py), the best single task of the search's seed points, and the
   BYOL / SimSiam frame baselines; a random-init encoder is exported untrained
   (:func:`contender_table` lists the rows);
4. evaluate every encoder with the same linear probe on the demo test split, for the
   action label and the nuisance (object identity) label (:func:`contender_row`, one
   row each), and print one table (:func:`comparison_table`).

Every step is one console command run as a subprocess, so each is rerunnable alone;
finished steps are skipped on a rerun (the search resumes). Seeds are printed.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from elo.rundir import atomic_write_json, atomic_write_text, read_jsonl

#: rows of the comparison table, in order
CONTENDERS = (
    "frame", "timemean", "motion", "pixels", "random", "supervised", "uniform",
    "uniform_tuned", "rlw", "uncertainty", "single", "byol", "simsiam", "clip_byol",
    "clip_simsiam", "evolved",
)  # fmt: skip
#: parameter-free probe rows: what a linear probe reads from raw clips without learning
PROBES = ("frame", "timemean", "motion", "pixels")
#: every ELo-model row is trained at this shared size (docs/learning.md)
FINAL_OVERRIDES = (
    "train.batch_size=16", "model.rgb.width=16", "model.flow.width=16", "model.audio.width=16",
)  # fmt: skip
RAW_RGB = "data.modalities.rgb.center_time=false"  # probes of the uncentred clips
#: the tuned-uniform row's learning rates (x1/4, x1, x4 the final lr of configs/train/final.yaml)
LR_GRID = "0.0005,0.002,0.008"
LR_GRID_FRACTION = 10  # each grid lr trains final_steps // 10 steps (elo/train/lrgrid.py)


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


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _run(cmd: list[str], log: Path) -> None:
    print(f"$ {shlex.join(cmd)}", flush=True)
    t0 = time.time()
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"$ {shlex.join(cmd)}\n")
        fh.flush()
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT).returncode
    print(f"  ... {time.time() - t0:.0f} s (log: {log})", flush=True)
    if rc != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-5:]
        raise SystemExit(f"step failed (exit {rc}): {shlex.join(cmd)}\n" + "\n".join(tail))


def best_single_task(search_dir: Path) -> tuple[str, dict[str, float]] | None:
    """The single-task seed point with the best (label-free) fitness in the search, by
    the search's own rule (docs/search.md): highest rung reached, then fitness."""
    from elo.model.terms import TermKey

    best: tuple[tuple[int, float], str, dict[str, float]] | None = None
    for rec in read_jsonl(search_dir / "evaluations.jsonl"):
        if rec.get("status") != "ok" or not isinstance(rec.get("weights"), dict):
            continue
        on = {TermKey.parse(k).task for k, v in rec["weights"].items() if v > 1e-6}
        if len(on) != 1:
            continue
        rank = (int(rec.get("rung", 0) or 0), float(rec["fitness"]))
        if best is None or rank > best[0]:
            best = (rank, on.pop(), rec["weights"])
    return None if best is None else (best[1], best[2])


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


@dataclass(frozen=True)
class DemoOptions:
    """The parsed ``python -m elo.demo`` options (see :func:`main`)."""

    data: Path
    run: Path
    config: str = "demo"
    clips: int = 1200
    population: int = 64
    generations: int = 2
    proxy_steps: int | None = None
    final_steps: int = 300
    workers: int | None = None
    fitness: str | None = None
    seed: int = 0
    contenders: tuple[str, ...] = CONTENDERS

    @property
    def log(self) -> Path:
        return self.run / "demo.log"

    @property
    def cfg(self) -> list[str]:
        return ["--config", self.config]

    @property
    def seed_args(self) -> list[str]:
        return ["--seed", str(self.seed)]


def parse_options(argv: Sequence[str] | None = None) -> DemoOptions:
    p = argparse.ArgumentParser(prog="python -m elo.demo", description=__doc__.splitlines()[0])
    p.add_argument("--data", default="data/demo")
    p.add_argument("--run", default="runs/demo")
    p.add_argument("--config", default="demo")
    p.add_argument("--clips", type=int, default=1200)
    p.add_argument("--population", type=int, default=64)
    p.add_argument("--generations", type=int, default=2)
    p.add_argument("--proxy-steps", type=int, default=None, help="default: train.steps")
    p.add_argument("--final-steps", type=int, default=300, help="budget of every model")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--fitness", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--contenders",
        default=",".join(CONTENDERS),
        help=f"comma list of rows to train and evaluate, from {','.join(CONTENDERS)}",
    )
    args = p.parse_args(argv)
    wanted = [c.strip() for c in args.contenders.split(",") if c.strip()]
    unknown = sorted(set(wanted) - set(CONTENDERS))
    if unknown:
        p.error(f"unknown contender(s) {', '.join(unknown)}; choose from {', '.join(CONTENDERS)}")
    return DemoOptions(
        data=Path(args.data), run=Path(args.run), config=args.config, clips=args.clips,
        population=args.population, generations=args.generations,
        proxy_steps=args.proxy_steps, final_steps=args.final_steps, workers=args.workers,
        fitness=args.fitness, seed=args.seed, contenders=tuple(wanted),
    )  # fmt: skip


def make_data(o: DemoOptions) -> None:
    """Step 1: the demo dataset (unless it exists) and its modality cache."""
    if not (o.data / "labels.csv").exists():
        _run([_bin("elo-data"), "demo", "--out", str(o.data), "--clips", str(o.clips),
              "--seed", str(o.seed)], o.log)  # fmt: skip
    _run([_bin("elo-extract"), str(o.data), *o.cfg, "--no-progress"], o.log)


def evolve(o: DemoOptions) -> Path:
    """Step 2: the loss search (resumed when its folder exists); returns the folder."""
    search = o.run / "search"
    s_cmd = [_bin("elo-search"), *o.cfg, "--data", str(o.data), "--population",
             str(o.population), "--generations", str(o.generations),
             "--seed-points", *o.seed_args]  # fmt: skip
    if o.proxy_steps:
        s_cmd += ["--steps", str(o.proxy_steps)]
    if o.workers:
        s_cmd += ["--workers", str(o.workers)]
    if o.fitness:
        s_cmd += ["--fitness", o.fitness]
    s_cmd += (
        ["--resume", str(search)] if (search / "config.yaml").exists() else ["--out", str(search)]
    )
    _run(s_cmd, o.log)
    return search


def contender_table(o: DemoOptions, search: Path) -> dict[str, tuple[str, list[str]]]:
    """Step 3's rows: key -> (table name, extra ``elo-train`` arguments, or ``--pixels``
    for a parameter-free encoder); writes the weights files the rows train with."""
    weights_dir = o.run / "weights"
    weights_dir.mkdir(exist_ok=True)
    evolved = json.loads((search / "best_weights.json").read_text())
    uniform = {"weights": {k: 1.0 for k in evolved["weights"]}}
    single = best_single_task(search)
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
    if single is not None:
        atomic_write_json(weights_dir / "single.json", {"weights": single[1]})
        table["single"] = (
            f"best single task ({single[0]})",
            ["--weights", str(weights_dir / "single.json")],
        )
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
    probe it for both labels; the row of the comparison table."""
    out = o.run / "models" / key
    baseline = "--objective" in extra
    encoder_dir = out / "final" if baseline else out  # baselines export into final/
    if extra == ["--pixels"]:
        if not (encoder_dir / "encoder.yaml").exists():
            export_pixel_stats(encoder_dir, key)
    elif not (encoder_dir / "encoder.yaml").exists():
        steps = [] if "--steps" in extra else ["--steps", str(o.final_steps)]
        conf = [] if baseline else o.cfg  # baselines read configs/baseline/<name>.yaml
        opts = [] if baseline else ["--no-progress", *FINAL_OVERRIDES]
        _run([_bin("elo-train"), *conf, "--data", str(o.data), *steps, *o.seed_args,
              "--out", str(out), *opts, *extra], o.log)  # fmt: skip
    row: dict[str, Any] = {"model": name, "dir": str(encoder_dir)}
    for label in ("label", "identity"):
        ev = out / f"eval-{label}"
        if not (ev / "results.json").exists():
            raw = [RAW_RGB] if key in PROBES else []  # appearance probes: uncentred RGB
            _run([_bin("elo-eval"), "--encoder", str(encoder_dir), "--data", str(o.data),
                  *o.cfg, "--protocol", "linear", "--label", label, "--out", str(ev),
                  *o.seed_args, *raw], o.log)  # fmt: skip
        row[label] = json.loads((ev / "results.json").read_text())
    return row


def main(argv: Sequence[str] | None = None) -> int:
    o = parse_options(argv)
    o.run.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    print(f"ELo demo: data={o.data} run={o.run} seed={o.seed}", flush=True)
    make_data(o)
    search = evolve(o)
    table = contender_table(o, search)
    rows = []
    for key in (k for k in CONTENDERS if k in o.contenders and k in table):
        t_row = time.time()
        rows.append({**contender_row(o, key, *table[key]), "seconds": time.time() - t_row})
        print(f"row {key}: {rows[-1]['seconds']:.0f} s train + eval (demo so far "
              f"{(time.time() - t_start) / 60:.1f} min)", flush=True)  # fmt: skip
    text = comparison_table(rows, final_steps=o.final_steps, seed=o.seed)
    atomic_write_text(o.run / "comparison.md", text)
    atomic_write_json(o.run / "comparison.json", {"seed": o.seed, "rows": rows})
    print(text)
    print(f"demo finished in {(time.time() - t_start) / 60:.1f} min; seed {o.seed}; "
          f"rerun: make demo (finished steps are reused; delete {o.run} to start over)")  # fmt: skip
    return 0


def comparison_table(rows: list[dict[str, Any]], *, final_steps: int, seed: int) -> str:
    lines = [
        f"Demo test split, linear probe, {final_steps} training steps per model, seed {seed}.",
        "",
        "| model | action top-1 | action balanced acc | identity top-1 (nuisance) | seconds (train + eval) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:  # s: this invocation's train + eval seconds (a reused row: ~0)
        lines.append(
            f"| {r['model']} | {r['label']['top1']:.3f} | "
            f"{r['label']['balanced_accuracy']:.3f} | "
            f"{r['identity']['top1']:.3f} | {r.get('seconds', float('nan')):.0f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
