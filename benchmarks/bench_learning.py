"""Does learning show? Train the comparison rows at one step budget for several seeds on
one generated dataset and probe each RGB encoder on its test split (mean ± sd).

    python benchmarks/bench_learning.py --style a --seeds 0 1 2 --out runs/learn/a
    python benchmarks/bench_learning.py --style c --out runs/learn/c      # confirm only
    python benchmarks/bench_learning.py --table-from runs/learn/a runs/learn/b runs/learn/c

Rows (every trained row: the same encoder, data, crops, optimizer and step budget, the
``--config`` profile's final training settings, i.e. what ``elo-train`` does):

* ``random``: the untrained encoder;
* ``supervised``: ``rgb/supervised`` alone (labels: the upper reference);
* ``uniform``: every default term at λ = 1; ``rlw`` / ``uncertainty``: the weighting
  baselines (``objective.weighting``, docs/learning.md);
* one row per single self-supervised term (``--tasks``), each task family alone;
  ``--best-seeds`` trains the best of them (by mean probe over its seeds so far) again;
* ``frame``, ``timemean``, ``motion``: parameter-free probes of the uncentred clips
  (the middle frame's and the time-mean image's pixels: appearance shortcuts, which
  should sit near chance; hand-made motion statistics of the flow).

Probe: :func:`elo.evaluation.probe.linear_probe` (balanced class weights, C chosen on
held-out train) on the Zipf-sized train split, scored on the balanced test split; the
table reports balanced accuracy. Every finished (row, seed) is one line of
``<out>/results.jsonl``: a rerun skips it (resumable), ``--jobs 2`` trains two rows at
once with one torch thread each. Styles: ``a`` (the demo generator), ``b`` (its second
style) and ``c`` (``elo/data/demo_c.py``, written independently: never used to choose a
default, only to confirm one).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

TASKS = (
    "rgb/reconstruction",
    "rgb/future",
    "rgb/temporal_order",
    "rgb->flow/transfer",
    "rgb+flow/contrastive",
    "rgb+audio/contrastive",
    "rgb+flow/alignment",
    "rgb+audio/alignment",
    "distill/flow->rgb@4",
    "distill/audio->rgb@4",
    "rgb/byol",
    "rgb/simsiam",
)
PROBES = ("frame", "timemean", "motion")
WEIGHTINGS = ("uniform", "rlw", "uncertainty")
#: generator options per style (the generator seed comes from --gen-seed)
STYLE_OPTIONS: dict[str, dict[str, Any]] = {"a": {}, "b": {"distractors": 3}, "c": {}}


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--style", default="a", choices=sorted(STYLE_OPTIONS))
    p.add_argument("--gen-seed", type=int, default=None, help="default: a 0, b 7, c 0")
    p.add_argument("--data", default=None, help="dataset folder (generated if missing)")
    p.add_argument("--clips", type=int, default=1200)
    p.add_argument("--config", default="default")
    p.add_argument("--train", default="final", help="configs/train/<name> under the profile")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--rows", default="probes,random,supervised,uniform,rlw,uncertainty,tasks")
    p.add_argument("--tasks", nargs="*", default=list(TASKS))
    p.add_argument("--task-seeds", type=int, nargs="+", default=[0])
    p.add_argument("--best-seeds", type=int, nargs="*", default=[])
    p.add_argument("--jobs", type=int, default=1, help="rows trained at once (1 thread each)")
    p.add_argument("--out", default=None, help="results folder (results.jsonl, table.md)")
    p.add_argument("--table-from", nargs="+", default=None, help="print the tables of folders")
    p.add_argument("overrides", nargs="*", help="config key=value overrides")
    return p.parse_args(argv)


# -- data ------------------------------------------------------------------------------
def dataset_root(args: argparse.Namespace) -> Path:
    """The dataset folder, generated once (``elo.data.demo_data.make_demo``)."""
    from elo.data.demo_data import make_demo

    gen_seed = args.gen_seed if args.gen_seed is not None else {"b": 7}.get(args.style, 0)
    root = Path(args.data or f"data/learn-{args.style}{gen_seed}")
    if not (root / "labels.csv").exists():
        print(f"making the {args.style} dataset (seed {gen_seed}) in {root} ...", flush=True)
        make_demo(
            root,
            clips=args.clips,
            seed=gen_seed,
            style=args.style,
            workers=2,
            **STYLE_OPTIONS[args.style],
        )
    return root


def config(args: argparse.Namespace, extra: Sequence[str] = ()) -> dict[str, Any]:
    """The profile as ``elo-train --config C --train T`` composes it, plus overrides."""
    from elo.config import apply_overrides, compose, deep_merge, resolve_config_path

    path = resolve_config_path(args.config)
    cfg = compose(path)
    if args.train:  # the train file under the profile's own train keys (elo-train --train)
        from elo.baselines.cli import explicit_section

        explicit = explicit_section(path, "train")
        cfg["train"] = deep_merge(compose(resolve_config_path(args.train, "train")), explicit)
    return apply_overrides(cfg, [*args.overrides, *extra])


_SPLITS: dict[str, Any] = {}


def split(cfg: dict[str, Any], root: Path, name: str, raw: bool = False) -> dict[str, Any]:
    """RGB (centre crops, as the fitness and evaluation see them) and flow of every clip
    of split ``name`` with labels; ``raw``: uncentred RGB. Cached per process."""
    import torch

    from elo.data.datasets import make_loader

    key = f"{root}:{name}:{raw}"
    if key not in _SPLITS:
        c = dict(cfg)
        if raw:
            from elo.config import apply_overrides

            c = apply_overrides(cfg, ["data.modalities.rgb.center_time=false"])
        loader = make_loader(
            c,
            root,
            split=name,
            modalities=("rgb", "flow"),
            batch_size=64,
            shuffle=False,
            extract_workers=0,
        )
        parts: dict[str, list[Any]] = {"rgb": [], "flow": [], "label": []}
        for b in loader:
            parts["rgb"].append(b["rgb"])
            parts["flow"].append(b["flow"])
            parts["label"].append(b["meta"]["label"])
        _SPLITS[key] = {
            "rgb": torch.cat(parts["rgb"]),
            "flow": torch.cat(parts["flow"]),
            "label": torch.cat(parts["label"]).numpy(),
        }
    return _SPLITS[key]


def fixed_features(kind: str, d: dict[str, Any]) -> np.ndarray:
    """Parameter-free features: the middle frame, the time-mean image (pixels at a
    quarter of the resolution) or motion statistics of the flow."""
    x = d["rgb"].numpy()  # N,3,T,H,W
    if kind == "frame":
        return x[:, :, x.shape[2] // 2, ::4, ::4].reshape(len(x), -1)
    if kind == "timemean":
        return x.mean(2)[:, :, ::4, ::4].reshape(len(x), -1)
    f = d["flow"].numpy()  # N,2,T-1,H,W
    dx, dy = f[:, 0], f[:, 1]
    curl = np.gradient(dy, axis=3) - np.gradient(dx, axis=2)
    div = np.gradient(dx, axis=3) + np.gradient(dy, axis=2)
    mag = np.sqrt(dx**2 + dy**2)
    stats = [dx, dy, curl, div, mag]
    return np.concatenate([s.mean((2, 3)) for s in stats] + [mag.std((2, 3))], axis=1)


# -- one row ---------------------------------------------------------------------------
def lambdas(cfg: dict[str, Any], row: str) -> tuple[dict[str, Any], dict[str, float]]:
    """The config (objective section) and λ of a trained row."""
    from elo.model.objective import terms_from_config

    full = dict(cfg)
    full["objective"] = {**cfg["objective"], "exclude": []}
    terms = [str(t) for t in terms_from_config(full)]
    if row in WEIGHTINGS:
        default = {str(t) for t in terms_from_config(cfg)}
        full["objective"]["weighting"] = row
        return full, {t: float(t in default) for t in terms}
    key = "rgb/supervised" if row == "supervised" else row
    if key not in terms:
        raise SystemExit(f"unknown row {row!r}; terms: {', '.join(terms)}")
    return full, {t: float(t == key) for t in terms}


def run_row(job: tuple[argparse.Namespace, str, int]) -> dict[str, Any]:
    """Train (unless a probe / random row) and probe one (row, seed)."""
    args, row, seed = job
    import torch

    torch.set_num_threads(1 if args.jobs > 1 else min(2, os.cpu_count() or 1))
    from elo.evaluation.probe import linear_probe
    from elo.model.encoders_tv import build_video
    from elo.model.network import embed
    from elo.model.objective import Weights, terms_from_config
    from elo.train.trainer import train_model

    t0 = time.perf_counter()
    cfg, root = config(args), dataset_root(args)
    if row in PROBES:
        tr, te = split(cfg, root, "train", raw=True), split(cfg, root, "test", raw=True)
        xtr, xte = fixed_features(row, tr), fixed_features(row, te)
    else:
        if row == "random":
            torch.manual_seed(seed)
            enc = build_video("rgb", 3, dict(cfg["model"]["rgb"])).encoder
        else:
            full, lam = lambdas(cfg, row)
            terms = terms_from_config(full)
            res = train_model(
                full,
                Weights(terms, lam),
                data_root=root,
                steps=args.steps,
                seed=seed,
                progress=False,
            )
            enc = res.model.encoders["rgb"]
        tr, te = split(cfg, root, "train"), split(cfg, root, "test")
        xtr, xte = embed(enc, tr["rgb"]), embed(enc, te["rgb"])
    acc = linear_probe(xtr, tr["label"], xte, te["label"], seed=0).balanced_accuracy
    return {
        "row": row,
        "seed": seed,
        "acc": float(acc),
        "steps": args.steps,
        "seconds": round(time.perf_counter() - t0, 1),
    }


# -- the driver ------------------------------------------------------------------------
def load_results(out: Path) -> list[dict[str, Any]]:
    path = out / "results.jsonl"
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def plan(args: argparse.Namespace, done: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """The (row, seed) jobs still to run, cheapest first."""
    have = {(r["row"], r["seed"]) for r in done}
    jobs: list[tuple[str, int]] = []
    for r in args.rows.split(","):
        if r == "probes":
            jobs += [(p, 0) for p in PROBES]
        elif r == "tasks":
            jobs += [(t, s) for t in args.tasks for s in args.task_seeds]
        else:
            jobs += [(r, s) for s in args.seeds]
    return [j for j in dict.fromkeys(jobs) if j not in have]


def best_task(done: list[dict[str, Any]]) -> str | None:
    """The single self-supervised task with the highest mean probe so far."""
    means = {t: np.mean([r["acc"] for r in done if r["row"] == t]) for t in TASKS}
    means = {t: m for t, m in means.items() if not np.isnan(m)}
    return max(means, key=lambda t: means[t]) if means else None


def execute(args: argparse.Namespace, out: Path, jobs: list[tuple[str, int]]) -> None:
    """Run ``jobs`` (``--jobs`` at a time), appending each result as it finishes."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    def record(res: dict[str, Any]) -> None:
        with open(out / "results.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(res) + "\n")
        print(
            f"{res['row']:26s} seed {res['seed']}  {res['acc']:.3f}  ({res['seconds']:.0f} s)",
            flush=True,
        )

    if args.jobs <= 1:
        for row, seed in jobs:
            record(run_row((args, row, seed)))
        return
    with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(run_row, (args, row, seed)) for row, seed in jobs]
        for f in as_completed(futures):
            record(f.result())


def table(out: Path) -> str:
    """Markdown table of one results folder: mean ± sd (n) per row."""
    done = load_results(out)
    meta = json.loads((out / "meta.json").read_text()) if (out / "meta.json").exists() else {}
    rows = list(dict.fromkeys(r["row"] for r in done))
    lines = [
        f"**{out}** ({meta.get('describe', '')})",
        "",
        "| row | balanced acc | seeds |",
        "|---|---|---|",
    ]
    for row in rows:
        accs = [r["acc"] for r in done if r["row"] == row]
        sd = f" ± {np.std(accs, ddof=1):.3f}" if len(accs) > 1 else ""
        lines.append(f"| {row} | {np.mean(accs):.3f}{sd} | {len(accs)} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.table_from:
        print("\n\n".join(table(Path(d)) for d in args.table_from))
        return 0
    out = Path(args.out or f"runs/learn/{args.style}")
    out.mkdir(parents=True, exist_ok=True)
    root = dataset_root(args)
    describe = f"style {args.style}, {root}, --config {args.config}, {args.steps} steps" + (
        f", {' '.join(args.overrides)}" if args.overrides else ""
    )
    meta = {"describe": describe, "argv": list(argv) if argv is not None else None}
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    execute(args, out, plan(args, load_results(out)))
    best = best_task(load_results(out))
    if best and args.best_seeds:
        have = {r["seed"] for r in load_results(out) if r["row"] == best}
        execute(args, out, [(best, s) for s in args.best_seeds if s not in have])
    text = table(out)
    (out / "table.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
