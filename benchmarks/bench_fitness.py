"""How far can the fitness be trusted? Rank a population of differently trained RGB
encoders on the demo dataset by each fitness and by linear-probe accuracy, and print
the Spearman correlations and the seconds per fitness evaluation.

    .venv/bin/python benchmarks/bench_fitness.py                  # full: 18 encoders
    .venv/bin/python benchmarks/bench_fitness.py --trained 4 --steps 6 --clips 200  # quick

Population (all the demo's tiny RGB encoder unless noted):

* ``random``: random initialisation, several seeds and conv types (2+1D, 3D, 2D);
* ``trained``: short ELo runs (:func:`elo.trainer.train_model`) with random λ on a
  random sparse subset of 1-3 terms (all terms at once cost ~14 s/step on 2 cores);
* ``pixels``: the parameter-free pixel-statistics reference encoder
  (:class:`elo.evaluate.PixelStatsEncoder`), grid 1 and 2.

Per encoder: embeddings of the (Zipf-sized, unlabeled) train pool -> Zipf fitness in
several settings; a small labeled subset of that pool (``--labeled`` per class) ->
weak fitness; the whole labeled train pool -> linear probe scored on the (balanced)
test split = the target. ELo, arXiv 2002.12177, §3.3 reports that the Zipf fitness
gives results similar to the weakly-supervised one; this measures it at demo scale.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np


def _tensors(cfg: dict[str, Any], root: Path, split: str) -> tuple[Any, np.ndarray]:
    import torch

    from elo.data import make_loader

    ld = make_loader(cfg, root, split=split, modalities=("rgb",), batch_size=64, shuffle=False)
    xs, ys = [], []
    for b in ld:
        keep = b["present"]["rgb"]
        xs.append(b["rgb"][keep])  # B,3,T,H,W
        ys.append(b["meta"]["label"][keep].numpy())
    return torch.cat(xs), np.concatenate(ys)


def _population(args: argparse.Namespace, cfg: dict[str, Any], root: Path) -> list[tuple[str, Any]]:
    """``(name, encoder)`` pairs; trained ones are built lazily (they take minutes)."""
    from elo.encoders import build_video_encoder
    from elo.evaluate import build_pixel_stats_encoder

    rgb = dict(cfg["model"]["rgb"])
    pop: list[tuple[str, Any]] = []
    convs = ["2plus1d", "3d", "2d"]
    for i in range(args.random):
        import torch

        torch.manual_seed(args.seed + 100 + i)
        conv = convs[i % len(convs)]
        pop.append((f"random-{conv}-s{i}", build_video_encoder(rgb, conv=conv)))
    for g in (1, 2):
        pop.append((f"pixels-grid{g}", build_pixel_stats_encoder(grid=g)))
    rng = np.random.default_rng(args.seed)
    for i in range(args.trained):
        pop.append((f"trained-{i}", ("train", int(rng.integers(1 << 30)))))
    return pop


def _train(cfg: dict[str, Any], root: Path, seed: int, steps: int, loader: Any) -> tuple[Any, str]:
    from elo.objective import Weights, terms_from_config
    from elo.trainer import train_model

    terms = terms_from_config(cfg)
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 4))
    chosen = {str(terms[j]) for j in rng.choice(len(terms), size=n, replace=False)}
    lam = {str(t): (float(rng.uniform(0.2, 1.0)) if str(t) in chosen else 0.0) for t in terms}
    res = train_model(
        cfg, Weights(terms, lam), data_root=root, steps=steps, seed=seed % 10_000,
        progress=False, loader=loader,
    )  # fmt: skip
    desc = "+".join(f"{k}={v:.2f}" for k, v in sorted(lam.items()) if v > 0)
    return res.model.encoders["rgb"], desc


def _embed(enc: Any, x: Any, bs: int = 64) -> np.ndarray:
    import torch

    enc.eval()
    with torch.no_grad():
        return torch.cat([enc(x[i : i + bs]).embedding for i in range(0, len(x), bs)]).numpy()


def _labeled_subset(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    idx = [rng.permutation(np.flatnonzero(y == c))[:per_class] for c in np.unique(y)]
    return np.sort(np.concatenate(idx))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="data/bench-fitness", help="demo dataset (made if missing)")
    p.add_argument("--clips", type=int, default=400, help="demo clips when making it")
    p.add_argument("--random", type=int, default=6, help="random-init encoders")
    p.add_argument("--trained", type=int, default=10, help="short ELo runs with random λ")
    p.add_argument("--steps", type=int, default=20, help="steps per trained encoder")
    p.add_argument("--labeled", type=int, default=6, help="labeled clips per class (weak)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the per-encoder rows here")
    args = p.parse_args(argv)

    import torch
    from scipy.stats import spearmanr

    from elo.config import load_config
    from elo.data import make_loader
    from elo.demo_data import make_demo
    from elo.probe import linear_probe
    from search.fitness import WeakFitness, ZipfFitness

    torch.set_num_threads(args.threads)
    root = Path(args.data)
    if not (root / "labels.csv").exists():
        print(f"making the demo dataset ({args.clips} clips) in {root} ...", flush=True)
        make_demo(root, clips=args.clips, seed=args.seed, workers=args.threads)
    cfg = load_config("demo")
    xtr, ytr = _tensors(cfg, root, "train")
    xte, yte = _tensors(cfg, root, "test")
    sub = _labeled_subset(ytr, args.labeled, args.seed)
    print(f"pool {len(xtr)} clips (class sizes {np.bincount(ytr).tolist()}), test {len(xte)}, "
          f"weak subset {len(sub)}", flush=True)  # fmt: skip
    fitnesses: dict[str, Any] = {
        "zipf k16": ZipfFitness(k=16, seed=args.seed),
        "zipf k8": ZipfFitness(k=8, seed=args.seed),
        "zipf k16 rev": ZipfFitness(k=16, direction="zipf||clusters", seed=args.seed),
        "zipf k16 l2": ZipfFitness(k=16, normalize=True, seed=args.seed),
        "weak knn": WeakFitness(protocol="knn", seed=args.seed),
        "weak linear": WeakFitness(protocol="linear", seed=args.seed),
    }
    loader = None
    if args.trained:
        loader = make_loader(
            cfg, root, split="train", modalities=("rgb", "flow", "audio"), batch_size=16,
            shuffle=True, seed=args.seed, extract_workers=args.threads,
        )  # fmt: skip
    rows: list[dict[str, Any]] = []
    for name, enc in _population(args, cfg, root):
        t0 = time.perf_counter()
        desc = ""
        if isinstance(enc, tuple):
            enc, desc = _train(cfg, root, enc[1], args.steps, loader)
        t_train = time.perf_counter() - t0
        t0 = time.perf_counter()
        etr, ete = _embed(enc, xtr), _embed(enc, xte)  # N,D
        t_embed = time.perf_counter() - t0
        probe = linear_probe(etr, ytr, ete, yte, seed=args.seed)
        row: dict[str, Any] = {"encoder": name, "terms": desc, "probe": probe.balanced_accuracy}
        row["train_s"], row["embed_s"] = t_train, t_embed
        for fname, f in fitnesses.items():
            t0 = time.perf_counter()
            ctx = {"labels": ytr[sub]} if fname.startswith("weak") else {}
            r = f.score(etr[sub] if fname.startswith("weak") else etr, **ctx)
            row[fname], row[f"{fname} s"] = r.value, time.perf_counter() - t0
        rows.append(row)
        print(f"{name:<22} probe {row['probe']:.3f}  zipf {row['zipf k16']:+.4f}  "
              f"weak {row['weak knn']:.3f}  train {t_train:5.1f}s  {desc}", flush=True)  # fmt: skip

    acc = np.array([r["probe"] for r in rows])
    print(f"\n{len(rows)} encoders; probe balanced accuracy {acc.min():.3f}..{acc.max():.3f} "
          f"(chance {1 / len(np.unique(yte)):.3f}); pool {len(xtr)} clips, test {len(xte)}\n")  # fmt: skip
    print("| fitness | Spearman ρ vs probe | p-value | seconds / evaluation |")
    print("|---|---|---|---|")
    for fname in fitnesses:
        rho, pval = spearmanr([r[fname] for r in rows], acc)
        sec = float(np.mean([r[f"{fname} s"] for r in rows]))
        print(f"| {fname} | {rho:+.2f} | {pval:.3f} | {sec:.3f} |")
    emb = float(np.mean([r["embed_s"] for r in rows]))
    print(f"| (embedding {len(xtr) + len(xte)} clips, shared) | | | {emb:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
