"""Proxy validation: does a label-free fitness rank encoders the way downstream
accuracy does? A population of encoders of deliberately different quality is embedded
once (cached on disk), then every fitness scores every encoder and is correlated with
linear-probe accuracy (Spearman and Kendall, bootstrap confidence intervals over
encoders, seconds per evaluation).

    .venv/bin/python benchmarks/bench_fitness.py                 # full study (cached)
    .venv/bin/python benchmarks/bench_fitness.py --steps 6       # quicker population
    .venv/bin/python benchmarks/bench_fitness.py --out runs/bench-fitness  # JSON + markdown

Population (the demo's tiny encoders, ``configs/model/tiny.yaml``):

* ``random-*``: random initialisation, several seeds and conv types (2+1D, 3D, 2D);
* ``pixels-*``: the parameter-free pixel-statistics encoder
  (:class:`elo.evaluate.PixelStatsEncoder`);
* ``task-*``: one ELo term trained alone (every task family touching RGB: alignment,
  contrastive, future, reconstruction, temporal order, transfer, distillation) and the
  frame baselines ``rgb/byol`` and ``rgb/simsiam`` (small heads: the paper's 4096-wide
  MLPs cost seconds per step on 2 cores);
* ``long-*``: three of those terms trained 4x longer;
* ``randlam-*``: random λ over a random subset of 2-4 RGB terms;
* ``uniform``: every term at λ = 1 (fewer steps: ~14 s/step with all 26 terms);
* ``supervised-*``: the RGB encoder trained with cross-entropy on the pool's labels
  (an upper bound; three lengths).

Per encoder: embeddings of the Zipf-sized *train pool* (unlabeled for the fitnesses)
are scored by each fitness; the target is the balanced accuracy of a linear probe
trained on the whole labeled pool and tested on the balanced test split. The
cross-modal fitnesses also get the pool's raw audio / flow (fixed references) or the
candidate's own audio / flow embeddings (``xmodal own``: the drift-prone variant).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

RGB_TERMS = (
    "rgb+audio/alignment", "rgb+flow/alignment", "rgb+audio/contrastive",
    "rgb+flow/contrastive", "rgb/future", "rgb/reconstruction", "rgb/temporal_order",
    "rgb->flow/transfer", "rgb->audio/transfer", "distill/flow->rgb@4",
    "distill/audio->rgb@4", "rgb/byol", "rgb/simsiam",
)  # fmt: skip
LONG_TERMS = ("rgb->flow/transfer", "distill/flow->rgb@4", "rgb+audio/contrastive")
SMALL_HEADS = {"byol": {"hidden_dim": 256, "proj_dim": 64}, "simsiam": {"proj_dim": 256}}


# -- data -------------------------------------------------------------------------------------
def _load(cfg: dict[str, Any], root: Path, split: str) -> dict[str, Any]:
    """All clips of a split with RGB present: rgb, flow, audio tensors and labels."""
    import torch

    from elo.data import make_loader

    mods = ("rgb", "flow", "audio")
    ld = make_loader(cfg, root, split=split, modalities=mods, batch_size=64, shuffle=False)
    parts: dict[str, list[Any]] = {m: [] for m in (*mods, "label")}
    for b in ld:
        keep = b["present"]["rgb"]  # B bool
        for m in mods:
            parts[m].append(b[m][keep])
        parts["label"].append(b["meta"]["label"][keep])
    return {k: torch.cat(v) for k, v in parts.items()}


def pinned_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The demo config with the study's geometry pinned (64x64 clips, width-16 encoders,
    every term available) so cached encoders stay comparable when demo.yaml changes."""
    cfg = json.loads(json.dumps(cfg))
    cfg["data"]["clip"]["size"] = 64
    for m in ("rgb", "flow", "audio"):
        cfg["model"][m]["width"] = 16
    cfg.setdefault("objective", {})["exclude"] = []
    return cfg


# -- population -------------------------------------------------------------------------------
def population(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Specs of the encoders to build; each is cached under its name + spec hash."""
    pop: list[dict[str, Any]] = []
    convs = ["2plus1d", "3d", "2d"]
    for i in range(args.random):
        pop.append({"name": f"random-{convs[i % 3]}-s{i}", "kind": "random",
                    "conv": convs[i % 3], "seed": args.seed + 100 + i})  # fmt: skip
    for g in (1, 2, 3):
        pop.append({"name": f"pixels-grid{g}", "kind": "pixels", "grid": g})
    for t in RGB_TERMS:
        pop.append({"name": f"task-{t}", "kind": "elo", "weights": {t: 1.0},
                    "steps": args.steps, "seed": args.seed})  # fmt: skip
    for t in LONG_TERMS:
        pop.append({"name": f"long-{t}", "kind": "elo", "weights": {t: 1.0},
                    "steps": 4 * args.steps, "seed": args.seed})  # fmt: skip
    rng = np.random.default_rng(args.seed)
    for i in range(args.randlam):
        terms = rng.choice(RGB_TERMS, size=int(rng.integers(2, 5)), replace=False)
        lam = {str(t): round(float(rng.uniform(0.2, 1.0)), 3) for t in terms}
        pop.append({"name": f"randlam-{i}", "kind": "elo", "weights": lam,
                    "steps": args.steps, "seed": args.seed + i})  # fmt: skip
    if args.uniform_steps:
        pop.append({"name": "uniform", "kind": "elo", "weights": "uniform",
                    "steps": args.uniform_steps, "seed": args.seed})  # fmt: skip
    for n in args.supervised:
        pop.append({"name": f"supervised-{n}", "kind": "supervised", "steps": n,
                    "seed": args.seed})  # fmt: skip
    return pop


def _train_elo(cfg: dict[str, Any], root: Path, spec: dict[str, Any], loader: Any) -> Any:
    from elo.objective import Weights, terms_from_config
    from elo.trainer import train_model

    cfg = {**cfg, "heads": {**cfg.get("heads", {}), **SMALL_HEADS}}
    terms = terms_from_config(cfg)
    want = spec["weights"]
    lam = {str(t): (1.0 if want == "uniform" else float(want.get(str(t), 0.0))) for t in terms}
    res = train_model(cfg, Weights(terms, lam), data_root=root, steps=int(spec["steps"]),
                      seed=int(spec["seed"]), progress=False, loader=loader)  # fmt: skip
    return res.model.encoders


def _train_supervised(cfg: dict[str, Any], pool: dict[str, Any], spec: dict[str, Any]) -> Any:
    """Upper bound: the RGB encoder + a linear layer, class-balanced cross-entropy."""
    import torch

    from elo.encoders import build_video_encoder

    torch.manual_seed(int(spec["seed"]))
    enc = build_video_encoder(dict(cfg["model"]["rgb"]))
    y = pool["label"]
    n_cls = int(y.max()) + 1
    head = torch.nn.Linear(enc.embed_dim, n_cls)
    w = 1.0 / torch.bincount(y, minlength=n_cls).clamp(min=1).float()
    opt = torch.optim.AdamW([*enc.parameters(), *head.parameters()], lr=2e-3)
    g = torch.Generator().manual_seed(int(spec["seed"]))
    enc.train()
    for _ in range(int(spec["steps"])):
        idx = torch.randint(len(y), (32,), generator=g)
        loss = torch.nn.functional.cross_entropy(
            head(enc(pool["rgb"][idx]).embedding), y[idx], weight=w * n_cls / w.sum()
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {"rgb": enc}


def _embed(enc: Any, x: Any, bs: int = 32) -> np.ndarray:
    import torch

    enc.eval()
    with torch.no_grad():
        return torch.cat([enc(x[i : i + bs]).embedding for i in range(0, len(x), bs)]).numpy()


def build_and_embed(
    spec: dict[str, Any], cfg: dict[str, Any], root: Path, pool: dict[str, Any],
    test: dict[str, Any], loader: Any,
) -> dict[str, Any]:  # fmt: skip
    """Train (or build) one encoder; its embeddings of pool and test, probe accuracy."""
    import torch

    from elo.encoders import build_video_encoder
    from elo.evaluate import build_pixel_stats_encoder
    from elo.probe import linear_probe

    t0 = time.perf_counter()
    if spec["kind"] == "random":
        torch.manual_seed(int(spec["seed"]))
        encs = {"rgb": build_video_encoder(dict(cfg["model"]["rgb"]), conv=spec["conv"])}
    elif spec["kind"] == "pixels":
        encs = {"rgb": build_pixel_stats_encoder(grid=int(spec["grid"]))}
    elif spec["kind"] == "elo":
        encs = _train_elo(cfg, root, spec, loader)
    else:
        encs = _train_supervised(cfg, pool, spec)
    train_s = time.perf_counter() - t0
    with torch.no_grad():  # not elo.model.embed: the pixel encoder has no parameters
        out: dict[str, Any] = {
            "pool": _embed(encs["rgb"], pool["rgb"]),  # N,D
            "test": _embed(encs["rgb"], test["rgb"]),
        }
        for m in ("audio", "flow"):
            if m in encs:
                out[f"pool_{m}"] = _embed(encs[m], pool[m])
    probe = linear_probe(out["pool"], pool["label"].numpy(), out["test"], test["label"].numpy(),
                         seed=0)  # fmt: skip
    out["probe"] = np.float64(probe.balanced_accuracy)
    out["train_s"] = np.float64(train_s)
    return out


def cached_population(
    args: argparse.Namespace, cfg: dict[str, Any], root: Path, pool: dict[str, Any],
    test: dict[str, Any],
) -> list[dict[str, Any]]:  # fmt: skip
    """Every encoder of :func:`population`, built once and cached as ``.npz``."""
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    loader = None
    rows = []
    for i, spec in enumerate(population(args)):
        part, parts = (int(v) for v in args.part.split("/"))
        if i % parts != part:
            continue
        key = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
        path = cache / f"{spec['name'].replace('/', '_').replace('>', '')}-{key}.npz"
        if path.exists():
            data = dict(np.load(path))
        elif args.cached_only:
            continue
        else:
            if spec["kind"] == "elo" and loader is None:
                from elo.data import make_loader

                loader = make_loader(cfg, root, split="train", modalities=("rgb", "flow", "audio"),
                                     batch_size=16, shuffle=True, seed=args.seed)  # fmt: skip
            data = build_and_embed(spec, cfg, root, pool, test, loader)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, **data)
            tmp.replace(path)  # atomic: a parallel --part never reads half a file
        rows.append({"spec": spec, **data})
        print(f"{spec['name']:<30} probe {float(data['probe']):.3f}  "
              f"train {float(data['train_s']):6.1f}s", flush=True)  # fmt: skip
    return rows


# -- study ------------------------------------------------------------------------------------
def fitnesses(seed: int) -> dict[str, Any]:
    """Every fitness compared, by display name."""
    from search.fitness import CombinedFitness, WeakFitness, XModalFitness, ZipfFitness

    return {
        "zipf k16": ZipfFitness(k=16, seed=seed),
        "zipf k8": ZipfFitness(k=8, seed=seed),
        "zipf k16 rev": ZipfFitness(k=16, direction="zipf||clusters", seed=seed),
        "zipf k16 l2": ZipfFitness(k=16, normalize=True, seed=seed),
        "weak knn": WeakFitness(protocol="knn", seed=seed),
        "weak linear": WeakFitness(protocol="linear", seed=seed),
        "xmodal audio": XModalFitness(references=("audio",), seed=seed),
        "xmodal flow": XModalFitness(references=("flow",), seed=seed),
        "xmodal geomean": XModalFitness(seed=seed),
        "xmodal mean": XModalFitness(aggregate="mean", seed=seed),
        "xmodal nmi": XModalFitness(metric="nmi", seed=seed),
        "xmodal l2": XModalFitness(normalize="l2", seed=seed),
        "xmodal own": XModalFitness(reference="candidate", seed=seed),
        "combined z0.1": CombinedFitness(zipf_weight=0.1, seed=seed),
        "combined z0.3": CombinedFitness(zipf_weight=0.3, seed=seed),
    }


def _own_defaults(cfg: dict[str, Any], pool: dict[str, Any], seed: int) -> dict[str, Any]:
    """Random-init audio / flow embeddings for encoders that have no own audio/flow."""
    import torch

    from elo.encoders import build_encoder
    from elo.model import embed

    out = {}
    for m in ("audio", "flow"):
        torch.manual_seed(seed)
        enc, _ = build_encoder(m, dict(cfg["model"][m]))
        with torch.no_grad():
            out[f"{m}_embeddings"] = embed(enc, pool[m]).numpy()
    return out


def correlations(f: np.ndarray, acc: np.ndarray, boot: int, seed: int) -> dict[str, float]:
    """Spearman ρ, Kendall τ, their 95% bootstrap CIs over encoders, Spearman p-value."""
    from scipy.stats import kendalltau, spearmanr

    rho, p = spearmanr(f, acc)
    tau = kendalltau(f, acc)[0]
    rng = np.random.default_rng(seed)
    rs, ts = [], []
    for _ in range(boot):
        i = rng.integers(len(f), size=len(f))
        if np.ptp(f[i]) == 0 or np.ptp(acc[i]) == 0:
            continue
        rs.append(spearmanr(f[i], acc[i])[0])
        ts.append(kendalltau(f[i], acc[i])[0])
    lo, hi = np.nanpercentile(rs, [2.5, 97.5])
    tlo, thi = np.nanpercentile(ts, [2.5, 97.5])
    return {"spearman": float(rho), "p": float(p), "spearman_lo": float(lo),
            "spearman_hi": float(hi), "kendall": float(tau), "kendall_lo": float(tlo),
            "kendall_hi": float(thi)}  # fmt: skip


def study(
    args: argparse.Namespace, cfg: dict[str, Any], rows: list[dict[str, Any]],
    pool: dict[str, Any],
) -> int:  # fmt: skip
    from search.fitness import reference_features

    t0 = time.perf_counter()
    refs = reference_features(audio=pool["audio"], flow=pool["flow"])
    t_refs = time.perf_counter() - t0
    ytr = pool["label"].numpy()
    rng = np.random.default_rng(args.seed)
    sub = np.sort(np.concatenate([rng.permutation(np.flatnonzero(ytr == c))[:6]
                                  for c in np.unique(ytr)]))  # fmt: skip
    own_default = _own_defaults(cfg, pool, args.seed)
    fits = fitnesses(args.seed)
    table: list[dict[str, Any]] = []
    for row in rows:
        out: dict[str, Any] = {"encoder": row["spec"]["name"], "probe": float(row["probe"])}
        own = {f"{m}_embeddings": row.get(f"pool_{m}", own_default[f"{m}_embeddings"])
               for m in ("audio", "flow")}  # fmt: skip
        for name, f in fits.items():
            x, ctx = row["pool"], {"references": refs, **own}
            if name.startswith("weak"):
                x, ctx = x[sub], {"labels": ytr[sub]}
            t0 = time.perf_counter()
            out[name] = f.score(x, **ctx).value
            out[f"{name} s"] = time.perf_counter() - t0
        table.append(out)
        print(f"{out['encoder']:<30} probe {out['probe']:.3f}  zipf {out['zipf k16']:+.3f}  "
              f"xmodal {out['xmodal geomean']:.3f} (a {out['xmodal audio']:.3f} "
              f"f {out['xmodal flow']:.3f})  own {out['xmodal own']:.3f}  "
              f"comb {out['combined z0.1']:+.3f}", flush=True)  # fmt: skip
    acc = np.array([r["probe"] for r in table])
    summary = {}
    for name in fits:
        c = correlations(np.array([r[name] for r in table]), acc, args.boot, args.seed)
        c["seconds"] = float(np.mean([r[f"{name} s"] for r in table]))
        summary[name] = c
    n_cls = len(np.unique(ytr))
    lines = [
        f"{len(table)} encoders; probe balanced accuracy {acc.min():.3f}..{acc.max():.3f} "
        f"(chance {1 / n_cls:.3f}); pool {len(ytr)} clips; {args.boot} bootstrap resamples; "
        f"fixed reference statistics {t_refs:.2f} s once",
        "",
        "| fitness | Spearman ρ [95% CI] | p | Kendall τ [95% CI] | s / evaluation |",
        "|---|---|---|---|---|",
    ]
    for name, c in summary.items():
        lines.append(
            f"| {name} | {c['spearman']:+.2f} [{c['spearman_lo']:+.2f}, {c['spearman_hi']:+.2f}] "
            f"| {c['p']:.3f} | {c['kendall']:+.2f} [{c['kendall_lo']:+.2f}, "
            f"{c['kendall_hi']:+.2f}] | {c['seconds']:.3f} |"
        )
    print("\n" + "\n".join(lines))
    if args.out:
        out_dir = Path(args.out)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "study.md").write_text("\n".join(lines) + "\n")
        (out_dir / "study.json").write_text(
            json.dumps({"summary": summary, "encoders": table}, indent=1)
        )
    return 0


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="data/bench-fitness", help="demo dataset (made if missing)")
    p.add_argument("--clips", type=int, default=400, help="demo clips when making it")
    p.add_argument("--cache", default="data/bench-fitness-pop", help="cached encoder embeddings")
    p.add_argument("--random", type=int, default=6, help="random-init encoders")
    p.add_argument("--randlam", type=int, default=4, help="short ELo runs with random λ")
    p.add_argument("--steps", type=int, default=20, help="steps per ELo run")
    p.add_argument(
        "--uniform-steps", type=int, default=8, help="steps of the all-terms run (0: skip)"
    )
    p.add_argument(
        "--supervised", type=int, nargs="*", default=[30, 100, 250], help="steps per run"
    )
    p.add_argument("--boot", type=int, default=2000, help="bootstrap resamples of encoders")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--part", default="0/1", help="i/n: build every n-th encoder from i (parallel)")
    p.add_argument("--cached-only", action="store_true", help="study the cached encoders only")
    p.add_argument("--build-only", action="store_true", help="only build the cached population")
    p.add_argument("--out", help="write study.json and study.md here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    import torch

    from elo.config import load_config
    from elo.demo_data import make_demo

    torch.set_num_threads(args.threads)
    root = Path(args.data)
    if not (root / "labels.csv").exists():
        print(f"making the demo dataset ({args.clips} clips) in {root} ...", flush=True)
        make_demo(root, clips=args.clips, seed=args.seed, workers=args.threads)
    cfg = pinned_config(load_config("demo"))
    pool, test = _load(cfg, root, "train"), _load(cfg, root, "test")
    print(f"pool {len(pool['rgb'])} clips (class sizes {np.bincount(pool['label']).tolist()}), "
          f"test {len(test['rgb'])}", flush=True)  # fmt: skip
    rows = cached_population(args, cfg, root, pool, test)
    if args.build_only:
        return 0
    return study(args, cfg, rows, pool)


if __name__ == "__main__":
    raise SystemExit(main())
