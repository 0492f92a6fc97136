"""Does learning show on the demo? Train the comparison-table rows at one step budget
for several seeds and probe each RGB encoder on the test split (mean ± sd).

    nice -n 5 .venv/bin/python benchmarks/bench_learning.py --data data/demo
    nice -n 5 .venv/bin/python benchmarks/bench_learning.py --data /tmp/demo-b \\
        --style b --gen-seed 7 --distractors 3          # a second, different generator

Rows (every trained row: the same encoder, data, crops, optimizer and step budget):

* ``random``: the untrained encoder (torchvision-style init, ``elo/model/encoders.py``);
* ``supervised``: ``rgb/supervised`` alone (labels: the upper reference);
* one row per single self-supervised term in ``--terms``;
* ``uniform``: every default term at λ = 1 (normalised terms, ``elo/model/objective.py``);
* ``frame``, ``timemean``, ``motion``: parameter-free probes of the same clips: the
  middle frame's pixels, the time-mean image's pixels (appearance shortcuts: both
  should sit near chance) and hand-made motion statistics (mean flow per step, curl,
  divergence, magnitude).

Probe: :func:`elo.evaluation.probe.linear_probe` (balanced class weights, C chosen on held-out
train) on the Zipf-sized train split, scored on the balanced test split; the table
reports balanced accuracy. Results go to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

SSL_TERMS = (
    "rgb/temporal_order",
    "rgb+flow/contrastive",
    "distill/flow->rgb@4",
    "rgb->flow/transfer",
    "rgb/byol",
    "rgb/simsiam",
)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--data", default="data/demo")
    p.add_argument("--clips", type=int, default=1200)
    p.add_argument("--gen-seed", type=int, default=0, help="demo generator seed")
    p.add_argument("--style", default="a", help="demo generator style (a | b)")
    p.add_argument("--distractors", type=int, default=2)
    p.add_argument("--config", default="demo")
    p.add_argument("--steps", type=int, default=None, help="default: the demo's (150)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--terms", nargs="*", default=list(SSL_TERMS))
    p.add_argument("--rows", default="frame,timemean,motion,random,supervised,terms,uniform")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="JSON results file")
    p.add_argument("overrides", nargs="*", help="config key=value overrides")
    return p.parse_args(argv)


def _split(cfg: dict[str, Any], root: Path, split: str) -> dict[str, Any]:
    """RGB (centre crops) and flow of every clip of ``split``, with labels."""
    import torch

    from elo.data.datasets import make_loader

    loader = make_loader(cfg, root, split=split, modalities=("rgb", "flow"), batch_size=64,
                         shuffle=False, extract_workers=0)  # fmt: skip
    rgb, flow, y = [], [], []
    for b in loader:
        rgb.append(b["rgb"])
        flow.append(b["flow"])
        y.append(b["meta"]["label"])
    return {"rgb": torch.cat(rgb), "flow": torch.cat(flow), "label": torch.cat(y).numpy()}


def _probe(xtr: Any, ytr: np.ndarray, xte: Any, yte: np.ndarray) -> float:
    from elo.evaluation.probe import linear_probe

    return float(linear_probe(xtr, ytr, xte, yte, seed=0).balanced_accuracy)


def fixed_features(kind: str, d: dict[str, Any]) -> np.ndarray:
    """Parameter-free features: the middle frame, the time-mean image (pixels at a
    quarter of the resolution, of the *uncentred* RGB) or motion statistics of the flow."""
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
    return np.concatenate(
        [dx.mean((2, 3)), dy.mean((2, 3)), curl.mean((2, 3)), div.mean((2, 3)),
         mag.mean((2, 3)), mag.std((2, 3))], axis=1,
    )  # fmt: skip


def train_row(cfg: dict[str, Any], root: Path, row: str, steps: int, seed: int) -> Any:
    """The RGB encoder of one trained row."""
    import torch

    from elo.model.encoders import build_video_encoder
    from elo.model.objective import Weights, terms_from_config
    from elo.train.trainer import train_model

    if row == "random":
        torch.manual_seed(seed)
        return build_video_encoder(dict(cfg["model"]["rgb"]))
    full = dict(cfg)
    full["objective"] = {**cfg["objective"], "exclude": []}
    terms = terms_from_config(full)
    if row == "uniform":
        default = {str(t) for t in terms_from_config(cfg)}
        lam = {str(t): float(str(t) in default) for t in terms}
    else:
        key = "rgb/supervised" if row == "supervised" else row
        lam = {str(t): float(str(t) == key) for t in terms}
    res = train_model(full, Weights(terms, lam), data_root=root, steps=steps, seed=seed,
                      progress=False)  # fmt: skip
    return res.model.encoders["rgb"]


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    import torch

    from elo.config import load_config
    from elo.data.demo_data import make_demo
    from elo.model.network import embed

    torch.set_num_threads(args.threads)
    root = Path(args.data)
    if not (root / "labels.csv").exists():
        print(f"making the demo dataset in {root} ...", flush=True)
        make_demo(root, clips=args.clips, seed=args.gen_seed, style=args.style,
                  distractors=args.distractors, workers=2)  # fmt: skip
    cfg = load_config(args.config, args.overrides)
    steps = args.steps or 150
    tr, te = _split(cfg, root, "train"), _split(cfg, root, "test")
    raw = load_config(args.config, [*args.overrides, "data.modalities.rgb.center_time=false"])
    fixed = {"train": _split(raw, root, "train"), "test": _split(raw, root, "test")}
    print(f"train {len(tr['label'])} clips, test {len(te['label'])}; {steps} steps, "
          f"batch {cfg['train']['batch_size']}", flush=True)  # fmt: skip
    rows: list[str] = []
    for r in args.rows.split(","):
        rows += list(args.terms) if r == "terms" else [r]
    results: dict[str, list[float]] = {}
    for row in rows:
        t0 = time.perf_counter()
        if row in ("frame", "timemean", "motion"):
            ftr, fte = fixed["train"], fixed["test"]
            accs = [_probe(fixed_features(row, ftr), ftr["label"], fixed_features(row, fte),
                           fte["label"])]  # fmt: skip
        else:
            accs = []
            for seed in args.seeds:
                enc = train_row(cfg, root, row, steps, seed)
                accs.append(_probe(embed(enc, tr["rgb"]), tr["label"], embed(enc, te["rgb"]),
                                   te["label"]))  # fmt: skip
        results[row] = accs
        print(f"{row:28s} {np.mean(accs):.3f} ± {np.std(accs):.3f}  "
              f"{[round(a, 3) for a in accs]}  ({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
        if args.out:
            Path(args.out).write_text(json.dumps({"steps": steps, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
