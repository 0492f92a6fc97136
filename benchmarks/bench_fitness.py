"""Proxy validation: does a label-free fitness rank encoders the way downstream
accuracy does? A graded population of encoders is trained once (embeddings cached on
disk), every fitness scores every encoder exactly as the search does, and each is
correlated with linear-probe accuracy (Spearman and Kendall with bootstrap confidence
intervals over encoders, seconds per evaluation). Also measured: the seed-to-seed
noise of one candidate's fitness (one λ proxy-trained with several seeds) against the
gap between random init and the supervised control.

    .venv/bin/python benchmarks/bench_fitness.py --out runs/bench-fitness/a
    .venv/bin/python benchmarks/bench_fitness.py --data data/bench-fitness-b \\
        --data-seed 1 --style b --out runs/bench-fitness/b           # second dataset
    .venv/bin/python benchmarks/bench_fitness.py --compare runs/bench-fitness/a \\
        runs/bench-fitness/b                                          # side by side

Set-up, as in a search (``search/fitness/data.py``): the demo profile's encoders and
clip size (``configs/experiment/demo.yaml``); every candidate trains on the train split
*minus* a held-out slice (``--heldout-fraction`` of the train videos, by a hash of the
path); the fitnesses embed that slice with BatchNorm statistics recalibrated on it
(``… eval-BN`` rows: the encoder's own running statistics instead). The target is the
balanced accuracy of a linear probe fitted on the train split and tested on the test
split (BatchNorm recalibrated on the train split), never seen by any fitness.

Population, graded by task and by training length (``--lengths``):

* ``random-s*``: random initialisation (the demo encoder, several seeds);
* ``pixels``: the parameter-free pixel-statistics encoder;
* ``<term>-<steps>``: one ELo term trained alone (reconstruction, future, temporal order,
  RGB-flow / RGB-audio contrastive and alignment, RGB→flow transfer, flow→RGB
  distillation, the frame baselines BYOL and SimSiam) and ``uniform`` (λ = 0.5 on every
  term, the search's starting point), at each length;
* ``supervised-<steps>``: the RGB encoder trained with class-balanced cross-entropy on
  the train split's labels (the upper control), at several lengths;
* ``noise-s*``: the ``--noise-term`` candidate at the search's proxy budget with
  ``--noise-seeds`` seeds (the noise of one candidate's fitness; not in the ρ table).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

TERMS = (
    "rgb/reconstruction",
    "rgb/future",
    "rgb/temporal_order",
    "rgb+flow/contrastive",
    "rgb+audio/contrastive",
    "rgb+flow/alignment",
    "rgb+audio/alignment",
    "rgb->flow/transfer",
    "distill/flow->rgb@4",
    "rgb/byol",
    "rgb/simsiam",
    "uniform",
)


# -- data -------------------------------------------------------------------------------------
def make_dataset(args: argparse.Namespace) -> Path:
    """The demo dataset to study (generated once; ``--style`` when the generator has it)."""
    from elo.data.demo_data import DemoSpec, make_demo

    root = Path(args.data)
    if not (root / "labels.csv").exists():
        opts: dict[str, Any] = {}
        if args.style:
            if "style" not in {f.name for f in dataclasses.fields(DemoSpec)}:
                raise SystemExit("this demo generator has no 'style' option")
            opts["style"] = args.style
        print(
            f"making the demo dataset ({args.clips} clips, seed {args.data_seed}, "
            f"{opts or 'default style'}) in {root} ...",
            flush=True,
        )
        make_demo(root, clips=args.clips, seed=args.data_seed, workers=args.threads, **opts)
    return root


def _split(cfg: dict[str, Any], root: Path, split: str) -> dict[str, Any]:
    """Every clip of a split with RGB present: rgb, flow, audio tensors and labels."""
    import torch

    from elo.data.datasets import make_loader

    mods = ("rgb", "flow", "audio")
    ld = make_loader(cfg, root, split=split, modalities=mods, batch_size=64, shuffle=False)
    parts: dict[str, list[Any]] = {m: [] for m in (*mods, "labels")}
    for b in ld:
        keep = b["present"]["rgb"]  # B bool
        for m in mods:
            parts[m].append(b[m][keep])
        parts["labels"].append(b["meta"]["label"][keep])
    from elo.search.fitness.data import centre_crop

    out = {k: torch.cat(v) for k, v in parts.items()}
    return {**out, **centre_crop(cfg, {m: out[m] for m in mods})}


def study_config(args: argparse.Namespace) -> dict[str, Any]:
    """The demo profile (what a search trains), every term available."""
    from elo.config import load_config

    cfg = load_config("demo", list(args.set))
    cfg.setdefault("objective", {})["exclude"] = []
    return cfg


# -- population -------------------------------------------------------------------------------
def population(args: argparse.Namespace, proxy_steps: int) -> list[dict[str, Any]]:
    """Specs of the encoders to build; each is cached under its name + a spec hash."""
    pop: list[dict[str, Any]] = []
    for i in range(args.random):
        pop.append({"name": f"random-s{i}", "kind": "random", "seed": args.seed + 100 + i})
    pop.append({"name": "pixels", "kind": "pixels"})
    for steps in args.supervised:
        pop.append(
            {"name": f"supervised-{steps}", "kind": "supervised", "steps": steps, "seed": args.seed}
        )
    noise = [
        {
            "name": f"noise-s{i}",
            "kind": "elo",
            "term": args.noise_term,
            "steps": proxy_steps,
            "seed": args.seed + 1000 + i,
            "noise": True,
        }
        for i in range(args.noise_seeds)
    ]
    for n, steps in enumerate(sorted(args.lengths)):
        if n == 1:  # the noise runs are cheap: before the long ones
            pop += noise
        for t in TERMS:
            if (
                t == "uniform"
                and args.uniform_lengths is not None
                and steps not in args.uniform_lengths
            ):
                continue  # every term per step: the costliest run
            long = steps != min(args.lengths)
            if t != "uniform" and args.long_terms and long and t not in args.long_terms:
                continue
            pop.append(
                {
                    "name": f"{t}-{steps}",
                    "kind": "elo",
                    "term": t,
                    "steps": steps,
                    "seed": args.seed,
                }
            )
    if len(args.lengths) < 2:
        pop += noise
    return pop


def _weights(cfg: dict[str, Any], term: str) -> Any:
    from elo.model.objective import Weights, terms_from_config

    terms = terms_from_config(cfg)
    # uniform: every self-supervised term (never a labelled one such as rgb/supervised)
    lam = {
        str(t): (0.5 * (t.task != "supervised") if term == "uniform" else float(str(t) == term))
        for t in terms
    }
    if term != "uniform" and term not in lam:
        raise SystemExit(f"unknown term {term!r}; known: {', '.join(lam)}")
    return Weights(terms, lam)


def _has_term(cfg: dict[str, Any], term: str) -> bool:
    from elo.model.objective import terms_from_config

    return term in {str(t) for t in terms_from_config(cfg)}


def _loader(cfg: dict[str, Any], root: Path, args: argparse.Namespace, seed: int) -> Any:
    from elo.search.fitness.data import training_loader

    mods = list(cfg.get("objective", {}).get("modalities", ["rgb", "flow", "audio"]))
    bs = int(cfg["train"]["batch_size"])
    return training_loader(
        cfg, root, fraction=args.heldout_fraction, modalities=mods, batch_size=bs, seed=seed
    )


def _train_supervised(cfg: dict[str, Any], loader: Any, spec: dict[str, Any], n_cls: int) -> Any:
    """The control: the RGB encoder + a linear layer, class-balanced cross-entropy, on
    the same batches (and augmentations) a candidate trains on."""
    import torch

    from elo.model.encoders import build_video_encoder

    torch.manual_seed(int(spec["seed"]))
    enc = build_video_encoder(dict(cfg["model"]["rgb"]))
    head = torch.nn.Linear(enc.embed_dim, n_cls)
    labels = torch.tensor(
        [loader.dataset.dataset.items[i][0].label for i in loader.dataset.indices]
    )
    w = 1.0 / torch.bincount(labels, minlength=n_cls).clamp(min=1).float()
    w = w * n_cls / w.sum()
    lr = float(cfg["train"]["lr"])
    opt = torch.optim.AdamW([*enc.parameters(), *head.parameters()], lr=lr)
    enc.train()
    step = 0
    while step < int(spec["steps"]):
        for batch in loader:
            keep = batch["present"]["rgb"]
            logits = head(enc(batch["rgb"][keep]).embedding)
            loss = torch.nn.functional.cross_entropy(logits, batch["meta"]["label"][keep], weight=w)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step >= int(spec["steps"]):
                break
    return {"rgb": enc}


def build_and_embed(
    spec: dict[str, Any],
    cfg: dict[str, Any],
    root: Path,
    args: argparse.Namespace,
    data: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """Train (or build) one encoder; its embeddings of the fitness clips (recalibrated
    and eval-mode BatchNorm), of train and test (for the probe), and the probe."""
    import torch

    from elo.evaluation.evaluate import build_pixel_stats_encoder
    from elo.evaluation.probe import linear_probe
    from elo.model.encoders import build_video_encoder
    from elo.search.fitness.data import fitness_embed, recalibrate_bn
    from elo.train.trainer import train_model

    t0 = time.perf_counter()
    if spec["kind"] == "random":
        torch.manual_seed(int(spec["seed"]))
        encs = {"rgb": build_video_encoder(dict(cfg["model"]["rgb"]))}
    elif spec["kind"] == "pixels":
        encs = {"rgb": build_pixel_stats_encoder(grid=2)}
    elif spec["kind"] == "elo":
        loader = _loader(cfg, root, args, int(spec["seed"]))
        res = train_model(
            cfg,
            _weights(cfg, spec["term"]),
            data_root=root,
            steps=int(spec["steps"]),
            seed=int(spec["seed"]),
            progress=False,
            loader=loader,
        )
        encs = dict(res.model.encoders)
    elif _has_term(cfg, "rgb/supervised"):  # the labelled task head: same crops and views
        loader = _loader(cfg, root, args, int(spec["seed"]))
        n_cls = int(data["train"]["labels"].max()) + 1
        sup = {**cfg, "heads": {**cfg.get("heads", {}), "supervised": {"classes": n_cls}}}
        res = train_model(
            sup,
            _weights(sup, "rgb/supervised"),
            data_root=root,
            steps=int(spec["steps"]),
            seed=int(spec["seed"]),
            progress=False,
            loader=loader,
        )
        encs = dict(res.model.encoders)
    else:
        loader = _loader(cfg, root, args, int(spec["seed"]))
        n_cls = int(data["train"]["labels"].max()) + 1
        encs = _train_supervised(cfg, loader, spec, n_cls)
    train_s = time.perf_counter() - t0
    held, train, test = data["held"], data["train"], data["test"]
    out: dict[str, Any] = {
        "held": fitness_embed(encs["rgb"], held["rgb"]).numpy(),  # N,D (the search's)
        "held_eval": fitness_embed(encs["rgb"], held["rgb"], bn="eval").numpy(),
    }
    for m in ("audio", "flow"):
        if m in encs:
            out[f"held_{m}"] = fitness_embed(encs[m], held[m]).numpy()
    enc = recalibrate_bn(encs["rgb"], train["rgb"])
    from elo.model.network import embed

    with torch.no_grad():
        xtr, xte = embed(enc, train["rgb"]).numpy(), embed(enc, test["rgb"]).numpy()
    probe = linear_probe(xtr, train["labels"].numpy(), xte, test["labels"].numpy(), seed=0)
    out["probe"] = np.float64(probe.balanced_accuracy)
    out["train_s"] = np.float64(train_s)
    return out


def cached_population(
    args: argparse.Namespace, cfg: dict[str, Any], root: Path, data: dict[str, Any]
) -> list[dict[str, Any]]:
    """Every encoder of :func:`population`, built once and cached as ``.npz``; the key
    holds the spec, the config and the dataset's generation parameters."""
    cache = Path(args.cache or f"{root}-pop")
    cache.mkdir(parents=True, exist_ok=True)
    demo = (root / "demo.json").read_text() if (root / "demo.json").exists() else str(root)
    base = json.dumps([cfg, demo, args.heldout_fraction], sort_keys=True, default=str)
    part, parts = (int(v) for v in args.part.split("/"))
    rows = []
    for i, spec in enumerate(population(args, int(cfg["train"]["steps"]))):
        if i % parts != part:
            continue
        key = hashlib.sha1((base + json.dumps(spec, sort_keys=True)).encode()).hexdigest()[:10]
        path = cache / f"{spec['name'].replace('/', '_').replace('>', '')}-{key}.npz"
        if path.exists():
            got = dict(np.load(path))
        elif args.cached_only:
            continue
        else:
            got = build_and_embed(spec, cfg, root, args, data)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, **got)
            tmp.replace(path)  # atomic: a parallel --part never reads half a file
        rows.append({"spec": spec, **got})
        print(
            f"{spec['name']:<32} probe {float(got['probe']):.3f}  "
            f"train {float(got['train_s']):6.1f}s",
            flush=True,
        )
    return rows


# -- study ------------------------------------------------------------------------------------
def fitnesses(seed: int) -> dict[str, Any]:
    """Every fitness compared, by display name."""
    from elo.search.fitness import (
        AlphaReqFitness,
        CombinedFitness,
        RankMeFitness,
        WeakFitness,
        XModalFitness,
        XPredictFitness,
        ZipfFitness,
    )

    return {
        "zipf k16 (paper)": ZipfFitness(k=16, seed=seed),
        "zipf k16 l2": ZipfFitness(k=16, normalize=True, seed=seed),
        "weak knn (6 labels/class)": WeakFitness(protocol="knn", seed=seed),
        "weak linear (6 labels/class)": WeakFitness(protocol="linear", seed=seed),
        "xmodal audio": XModalFitness(references=("audio",), seed=seed),
        "xmodal flow": XModalFitness(references=("flow",), seed=seed),
        "xmodal geomean (signed)": XModalFitness(seed=seed),
        "xmodal mean": XModalFitness(aggregate="mean", seed=seed),
        "xmodal own encoders": XModalFitness(reference="candidate", seed=seed),
        "xpredict audio": XPredictFitness(references=("audio",), seed=seed),
        "xpredict flow": XPredictFitness(references=("flow",), seed=seed),
        "xpredict mean": XPredictFitness(seed=seed),
        "xpredict min": XPredictFitness(aggregate="min", seed=seed),
        "rankme": RankMeFitness(),
        "rankme standardized": RankMeFitness(prepare="standardize"),
        "alpha-req": AlphaReqFitness(),
        "combined (xmodal - 0.1 zipf)": CombinedFitness(zipf_weight=0.1, seed=seed),
    }


#: fitnesses also scored on eval-mode BatchNorm embeddings (stale running statistics)
EVAL_BN = ("xmodal geomean (signed)", "xmodal mean", "xpredict mean", "rankme")


def _own_defaults(cfg: dict[str, Any], held: dict[str, Any], seed: int) -> dict[str, Any]:
    """Random-init audio / flow embeddings for encoders that have no audio / flow."""
    import torch

    from elo.model.encoders import build_encoder
    from elo.search.fitness.data import fitness_embed

    out = {}
    for m in ("audio", "flow"):
        torch.manual_seed(seed)
        enc, _ = build_encoder(m, dict(cfg["model"][m]))
        out[f"{m}_embeddings"] = fitness_embed(enc, held[m]).numpy()
    return out


def correlations(f: np.ndarray, acc: np.ndarray, boot: int, seed: int) -> dict[str, float]:
    """Spearman ρ, Kendall τ, their 95% bootstrap CIs over encoders, Spearman p-value."""
    from scipy.stats import kendalltau, spearmanr

    if np.ptp(f) == 0 or np.ptp(acc) == 0:  # a constant fitness ranks nothing
        return dict.fromkeys(
            ("spearman", "p", "spearman_lo", "spearman_hi", "kendall", "kendall_lo", "kendall_hi"),
            float("nan"),
        )
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
    lo, hi = np.nanpercentile(rs, [2.5, 97.5]) if rs else (np.nan, np.nan)
    tlo, thi = np.nanpercentile(ts, [2.5, 97.5]) if ts else (np.nan, np.nan)
    return {
        "spearman": float(rho),
        "p": float(p),
        "spearman_lo": float(lo),
        "spearman_hi": float(hi),
        "kendall": float(tau),
        "kendall_lo": float(tlo),
        "kendall_hi": float(thi),
    }


def score_all(
    row: dict[str, Any],
    fits: dict[str, Any],
    refs: dict[str, Any],
    own: dict[str, Any],
    weak: tuple[np.ndarray, np.ndarray],
) -> dict[str, float]:
    """Every fitness of one encoder (and its seconds), on the fitness clips."""
    out: dict[str, float] = {}
    own = {
        f"{m}_embeddings": row.get(f"held_{m}", own[f"{m}_embeddings"]) for m in ("audio", "flow")
    }
    for name, f in fits.items():
        for suffix, x in (("", row["held"]), (" eval-BN", row["held_eval"])):
            if suffix and name not in EVAL_BN:
                continue
            ctx: dict[str, Any] = {"references": refs, **own}
            if name.startswith("weak"):
                x, ctx = x[weak[0]], {"labels": weak[1]}
            t0 = time.perf_counter()
            out[name + suffix] = f.score(x, **ctx).value
            out[f"{name + suffix} s"] = time.perf_counter() - t0
    return out


def study(
    args: argparse.Namespace,
    cfg: dict[str, Any],
    rows: list[dict[str, Any]],
    held: dict[str, Any],
) -> dict[str, Any]:
    from elo.search.fitness import reference_features

    refs = reference_features(audio=held["audio"], flow=held["flow"])
    y = held["labels"].numpy()
    rng = np.random.default_rng(args.seed)
    sub = np.sort(
        np.concatenate([rng.permutation(np.flatnonzero(y == c))[:6] for c in np.unique(y)])
    )
    own_default = _own_defaults(cfg, held, args.seed)
    fits = fitnesses(args.seed)
    table: list[dict[str, Any]] = []
    for row in rows:
        out: dict[str, Any] = {
            "encoder": row["spec"]["name"],
            "probe": float(row["probe"]),
            "noise": bool(row["spec"].get("noise")),
        }
        out.update(score_all(row, fits, refs, own_default, (sub, y[sub])))
        table.append(out)
        print(
            f"{out['encoder']:<32} probe {out['probe']:.3f}  "
            + "  ".join(
                f"{k.split(' (')[0]} {out[k]:+.3f}"
                for k in (
                    "zipf k16 (paper)",
                    "xmodal geomean (signed)",
                    "xmodal mean",
                    "xpredict mean",
                    "rankme",
                    "alpha-req",
                )
            ),
            flush=True,
        )
    ranked = [r for r in table if not r["noise"]]
    acc = np.array([r["probe"] for r in ranked])
    names = [k for k in table[0] if k not in ("encoder", "probe", "noise") and not k.endswith(" s")]
    summary = {}
    for name in names:
        c = correlations(np.array([r[name] for r in ranked]), acc, args.boot, args.seed)
        c["seconds"] = float(np.mean([r[f"{name} s"] for r in table]))
        summary[name] = c
    return {
        "summary": summary,
        "encoders": table,
        "noise": noise_study(table, names),
        "pool": {"held": len(y), "classes": int(len(np.unique(y)))},
    }


def noise_study(table: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """Per fitness: the std over seeds of one candidate's fitness, and the gap between
    the random inits (mean) and the longest supervised control, in units of that std."""
    noise = [r for r in table if r["noise"]]
    rand = [r for r in table if r["encoder"].startswith("random-")]
    sup = [r for r in table if r["encoder"].startswith("supervised-")]
    if len(noise) < 2 or not rand or not sup:
        return {}
    top = max(sup, key=lambda r: int(r["encoder"].split("-")[-1]))
    out = {}
    for name in names:
        sd = float(np.std([r[name] for r in noise], ddof=1))
        gap = float(top[name] - np.mean([r[name] for r in rand]))
        out[name] = {"seed_sd": sd, "gap": gap, "gap_over_sd": gap / sd if sd > 0 else float("inf")}
    return out


def markdown(res: dict[str, Any], title: str) -> str:
    enc = [r for r in res["encoders"] if not r["noise"]]
    acc = np.array([r["probe"] for r in enc])
    chance = 1.0 / res["pool"]["classes"]
    lines = [
        f"### {title}",
        "",
        f"{len(enc)} encoders; probe balanced accuracy {acc.min():.3f}..{acc.max():.3f} "
        f"(chance {chance:.3f}; {int((acc >= chance + 0.10).sum())} at >= chance + 0.10); "
        f"{res['pool']['held']} fitness clips (held-out slice of the train split)",
        "",
        "| fitness | Spearman ρ [95% CI] | Kendall τ [95% CI] | seed sd | gap / sd | s / eval |",
        "|---|---|---|---|---|---|",
    ]
    for name, c in res["summary"].items():
        n = res["noise"].get(name, {})
        lines.append(
            f"| {name} | {c['spearman']:+.2f} [{c['spearman_lo']:+.2f}, {c['spearman_hi']:+.2f}] "
            f"| {c['kendall']:+.2f} [{c['kendall_lo']:+.2f}, {c['kendall_hi']:+.2f}] "
            f"| {n.get('seed_sd', float('nan')):.4f} | {n.get('gap_over_sd', float('nan')):.1f} "
            f"| {c['seconds']:.3f} |"
        )
    return "\n".join(lines)


def compare(dirs: list[str]) -> int:
    """Spearman ρ [CI] of every fitness, one column per study directory."""
    res = [json.loads((Path(d) / "study.json").read_text()) for d in dirs]
    head = "| fitness | " + " | ".join(Path(d).name for d in dirs) + " |"
    lines = [head, "|---|" + "---|" * len(dirs)]
    for name in res[0]["summary"]:
        cells = []
        for r in res:
            c = r["summary"].get(name)
            cells.append(
                "–"
                if c is None
                else f"{c['spearman']:+.2f} [{c['spearman_lo']:+.2f}, {c['spearman_hi']:+.2f}]"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    return 0


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--data", default="data/bench-fitness", help="demo dataset (made if missing)")
    p.add_argument("--clips", type=int, default=600, help="demo clips when making it")
    p.add_argument("--data-seed", type=int, default=0, help="demo generator seed")
    p.add_argument("--style", default="", help="demo generator style (second dataset)")
    p.add_argument("--cache", help="cached encoder embeddings (default: <data>-pop)")
    p.add_argument("--set", nargs="*", default=[], help="config overrides key=value")
    p.add_argument("--heldout-fraction", type=float, default=0.2)
    p.add_argument("--random", type=int, default=3, help="random-init encoders")
    p.add_argument("--lengths", type=int, nargs="*", default=[40, 160], help="steps per run")
    p.add_argument("--long-terms", nargs="*", help="terms trained beyond the first length (all)")
    p.add_argument("--uniform-lengths", type=int, nargs="*", help="uniform's lengths (all)")
    p.add_argument("--supervised", type=int, nargs="*", default=[20, 60, 160], help="steps")
    p.add_argument("--noise-seeds", type=int, default=5, help="seeds of the noise candidate")
    p.add_argument("--noise-term", default="uniform", help="the noise candidate's term")
    p.add_argument("--boot", type=int, default=2000, help="bootstrap resamples of encoders")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--part", default="0/1", help="i/n: build every n-th encoder from i (parallel)")
    p.add_argument("--cached-only", action="store_true", help="study the cached encoders only")
    p.add_argument("--build-only", action="store_true", help="only build the cached population")
    p.add_argument("--out", help="write study.json and study.md here")
    p.add_argument("--compare", nargs="+", help="print ρ side by side for these --out folders")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.compare:
        return compare(args.compare)
    import torch

    from elo.search.fitness.data import heldout_clips

    torch.set_num_threads(args.threads)
    root = make_dataset(args)
    cfg = study_config(args)
    data = {
        "held": heldout_clips(
            cfg, root, fraction=args.heldout_fraction, modalities=("rgb", "flow", "audio")
        ),
        "train": _split(cfg, root, "train"),
        "test": _split(cfg, root, "test"),
    }
    print(
        f"train {len(data['train']['rgb'])} clips "
        f"(class sizes {np.bincount(data['train']['labels']).tolist()}), fitness slice "
        f"{len(data['held']['rgb'])}, test {len(data['test']['rgb'])}",
        flush=True,
    )
    rows = cached_population(args, cfg, root, data)
    if args.build_only:
        return 0
    res = study(args, cfg, rows, data["held"])
    text = markdown(
        res, f"{root} (seed {args.data_seed}{', style ' + args.style if args.style else ''})"
    )
    print("\n" + text)
    if args.out:
        out_dir = Path(args.out)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "study.md").write_text(text + "\n")
        (out_dir / "study.json").write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
