"""The SimSiam and BYOL ablations as switches, reproduced in one table per method.

Every row trains the standalone baseline (``baselines.trainer.fit``) on scikit-learn's
handwritten digits (1797 real 8x8 images shipped with the package, upsampled to 16 px;
no download) at ONE shared step budget, for 3 seeds, and reports the cosine kNN
top-1 of the backbone (``elo.evaluation.probe.knn_accuracy``, k=20, stratified 80/20 split), the
collapse monitor's std of the l2-normalised projection at the last step (healthy
~1/sqrt(d), collapsed -> 0) and the seconds per run; the "random init" row is the same
encoder untrained. Each row stands beside the paper's finding (docs/ablations.md).

    python benchmarks/bench_ablations.py                 # both tables, 3 seeds
    python benchmarks/bench_ablations.py --method simsiam --seeds 1 --steps 50
    python benchmarks/bench_ablations.py --out runs/ablations.json

Rows differ from the method's baseline row only in the switch they name (config keys
in configs/baseline/*.yaml). Batch-size rows keep the step budget (so they see more or
fewer images) and scale the learning rate linearly (lr * B / 256), as both papers do.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: Views scaled to 8x8-pixel digits (reasons in tests/test_baseline_ssl_gain.py).
DIGIT_VIEWS = [
    "augment.crop_scale=[0.8,1.0]",
    "augment.flip_p=0",
    "augment.hue=0",
    "augment.saturation=0",
    "augment.gray_p=0",
]
COMMON = [
    "encoder.arch=small_cnn",
    "encoder.width=8",
    "train.log_every=0",
    "train.checkpoint_every=0",
    "train.warmup_steps=0",
    *DIGIT_VIEWS,
]

#: (row, overrides, the paper's finding). ImageNet figures: SimSiam Tables 1-5 (100
#: epochs, linear top-1), BYOL Table 5 and Fig. 3 (300 epochs).
SIMSIAM_ROWS: list[tuple[str, list[str], str]] = [
    ("baseline (sg, learned predictor, fixed pred lr)", [], "68.1 % (lr not decayed)"),
    ("no stop-gradient", ["simsiam.stop_gradient=false"], "collapses: 0.1 %, std -> 0"),
    ("no predictor", ["simsiam.predictor=none"], "collapses: 0.1 %"),
    ("fixed random predictor", ["simsiam.predictor=fixed"], "fails: 1.5 %"),
    ("predictor lr decayed", ["simsiam.fix_predictor_lr=false"], "works: 67.7 %"),
    ("BN none", ["simsiam.batch_norm=none"], "works, much worse: 34.6 %"),
    ("BN hidden only", ["simsiam.batch_norm=hidden"], "works: 67.4 %"),
    ("BN all (+ predictor output)", ["simsiam.batch_norm=all"], "unstable, fails"),
    ("cross-entropy similarity", ["simsiam.similarity=cross_entropy"], "works: 63.2 %"),
    ("one-sided loss", ["simsiam.symmetric=false"], "works: 64.8 %"),
    ("batch 32", ["train.batch_size=32"], "works at any batch: 66.1 % at 64"),
    ("batch 128", ["train.batch_size=128"], "67.3 % at 128"),
    ("batch 256", ["train.batch_size=256"], "68.1 % at 256"),
]
BYOL_ROWS: list[tuple[str, list[str], str]] = [
    ("baseline (predictor, cosine τ from 0.99)", [], "72.5 % (τ_base 0.996)"),
    ("no predictor", ["byol.predictor=false"], "collapses (< 1 %)"),
    ("τ = 1 (target stays at init)", ["byol.tau_schedule=constant", "byol.tau_base=1.0"], "18.8 %"),
    (
        "τ = 0 (target = online)",
        ["byol.tau_schedule=constant", "byol.tau_base=0.0"],
        "collapses (< 1 %)",
    ),
    (
        "τ = 0.99 constant",
        ["byol.tau_schedule=constant", "byol.tau_base=0.99"],
        "close to baseline",
    ),
    ("batch 32", ["train.batch_size=32"], "drops below 256 (Fig. 3a)"),
    ("batch 128", ["train.batch_size=128"], "drops below 256 (Fig. 3a)"),
    ("batch 256", ["train.batch_size=256"], "stable from 4096 down to 256"),
]


def digits(size: int = 16) -> tuple[Any, Any]:
    """All 1797 scikit-learn digits (8x8), upsampled, as uint8 RGB N,3,S,S + labels."""
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0  # N,1,8,8
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False).clamp(0, 1)
    return (x.repeat(1, 3, 1, 1) * 255).round().to(torch.uint8), torch.tensor(d.target)


def base_overrides(method: str, args: argparse.Namespace) -> list[str]:
    out = [
        *COMMON,
        f"train.steps={args.steps}",
        f"train.batch_size={args.batch}",
        f"train.lr={args.lr}",
    ]
    if method == "simsiam":
        out += ["simsiam.proj_dim=256", "simsiam.pred_dim=64", "augment.blur_p=0"]
    else:  # blur off as for SimSiam (a 3-px kernel erases 8-px strokes); view 2 solarizes
        out += ["byol.hidden_dim=512", "byol.proj_dim=128", "byol.tau_base=0.99"]
    return out


def run_row(
    method: str, overrides: list[str], seed: int, args: argparse.Namespace, data: Any
) -> dict[str, Any]:
    import torch

    from elo.baselines.trainer import fit, load_baseline_config

    images, labels = data
    cfg = load_baseline_config(
        method, None, [*base_overrides(method, args), *overrides, f"seed={seed}"]
    )
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        try:
            s = fit(cfg, images, Path(d), labels=labels)
        except Exception as exc:  # a diverging variant is a result, not a crash
            return {"error": f"{type(exc).__name__}: {exc}", "seconds": time.perf_counter() - t0}
    dim = int(cfg[method]["proj_dim"])
    return {
        "knn": s["knn_top1"],
        "std": s["collapse_std"],
        "std_ratio": s["collapse_std"] * math.sqrt(dim),
        "seconds": s["seconds"],
    }


def random_init(method: str, seed: int, args: argparse.Namespace, data: Any) -> dict[str, Any]:
    import torch

    from elo.baselines.image_encoder import build_image_encoder
    from elo.baselines.trainer import knn_eval, load_baseline_config

    images, labels = data
    cfg = load_baseline_config(method, None, [*base_overrides(method, args), f"seed={seed}"])
    torch.manual_seed(seed)  # fit() seeds the same way before building
    enc = build_image_encoder(**cfg["encoder"])
    return {"knn": knn_eval(enc, images, labels, cfg, "cpu")}


def mean_sd(values: list[float], digits: int = 3) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    m, sd = statistics.mean(values), statistics.stdev(values)
    return f"{m:.{digits}f} ± {sd:.{digits}f}"


#: Two-sided 95 % quantiles of Student's t by degrees of freedom (paired t-test).
T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}


def paired_delta(runs: list[dict[str, Any]], base: list[dict[str, Any]]) -> str:
    """kNN minus the baseline row's on the same seed: mean ± sd over seeds, and "tie"
    (a gap inside the noise) unless a paired t-test puts the mean away from 0 at 95 %."""
    d = [r["knn"] - b["knn"] for r, b in zip(runs, base, strict=False) if "knn" in r and "knn" in b]
    if len(d) < 2:
        return "–"
    m, sd = statistics.mean(d), statistics.stdev(d)
    t = T95.get(len(d) - 1, 2.0)
    verdict = "tie" if abs(m) <= t * sd / math.sqrt(len(d)) else ("lower" if m < 0 else "higher")
    return f"{m:+.3f} ± {sd:.3f} ({verdict})"


def table(method: str, rows: list[dict[str, Any]]) -> str:
    d = 256 if method == "simsiam" else 128
    head = (
        f"| {method} row | kNN top-1 | Δ kNN vs baseline (paired) "
        f"| std of z/‖z‖ (healthy {1 / math.sqrt(d):.4f}) | s / run | paper (ImageNet) |\n"
        "|---|---|---|---|---|---|"
    )
    lines = [head]
    base = next((r["runs"] for r in rows if r["name"].startswith("baseline")), [])
    for r in rows:
        runs = [x for x in r["runs"] if "error" not in x]
        errors = len(r["runs"]) - len(runs)
        knn = mean_sd([x["knn"] for x in runs])
        delta = "–" if r["name"].startswith("baseline") else paired_delta(r["runs"], base)
        std = mean_sd([x["std"] for x in runs if "std" in x])
        secs = mean_sd([x["seconds"] for x in runs if "seconds" in x], 1)
        note = f" ({errors} of {len(r['runs'])} diverged)" if errors else ""
        lines.append(f"| {r['name']}{note} | {knn} | {delta} | {std} | {secs} | {r['paper']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--method", choices=["simsiam", "byol", "both"], default="both")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=100, help="shared step budget of every row")
    ap.add_argument("--batch", type=int, default=64, help="batch size of every non-batch row")
    ap.add_argument("--size", type=int, default=8, help="image side (digits are 8x8)")
    ap.add_argument("--lr", type=float, default=0.2, help="base lr at batch 256")
    ap.add_argument(
        "--only", default="", help="run only rows whose name contains one of these (comma list)"
    )
    ap.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    ap.add_argument("--table-from", type=Path, default=None, help="print tables of a --out file")
    args = ap.parse_args()
    if args.table_from is not None:
        saved = json.loads(args.table_from.read_text())
        a = saved["args"]
        spec = {"simsiam": SIMSIAM_ROWS, "byol": BYOL_ROWS}
        for method, rows in saved["results"].items():
            paper = {name: text for name, _, text in spec.get(method, [])}
            for r in rows:  # the current wording of the paper's findings
                r["paper"] = paper.get(r["name"], r["paper"])
        for method, rows in saved["results"].items():
            print(f"\n### {method} ({a['steps']} steps, batch {a['batch']}, {a['seeds']} seeds)\n")
            print(table(method, rows))
        return

    import torch

    torch.set_num_threads(1)
    data = digits(args.size)
    methods = ["simsiam", "byol"] if args.method == "both" else [args.method]
    results: dict[str, list[dict[str, Any]]] = {}
    t_all = time.perf_counter()
    for method in methods:
        spec = SIMSIAM_ROWS if method == "simsiam" else BYOL_ROWS
        rows: list[dict[str, Any]] = [
            {
                "name": "random init",
                "paper": "",
                "runs": [random_init(method, s, args, data) for s in range(args.seeds)],
            }
        ]
        for name, overrides, paper in spec:
            if args.only and not any(part in name for part in args.only.split(",")):
                continue
            runs = []
            for seed in range(args.seeds):
                res = run_row(method, overrides, seed, args, data)
                runs.append(res)
                print(f"{method:8s} {name:45s} seed {seed}: {res}", file=sys.stderr, flush=True)
            rows.append({"name": name, "paper": paper, "overrides": overrides, "runs": runs})
        results[method] = rows
        print(f"\n### {method} ({args.steps} steps, batch {args.batch}, {args.seeds} seeds)\n")
        print(table(method, rows), flush=True)
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s", flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps({"args": vars(args) | {"out": str(args.out)}, "results": results}, indent=1)
        )


if __name__ == "__main__":
    main()
