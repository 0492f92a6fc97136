"""Time one training step (forward + backward + AdamW) of the ELo model.

Rows, measured in one run on the same batch (contract shapes, demo clip size):
* one term (``rgb/reconstruction``): one RGB encoder pass;
* all default terms (``configs/objective/default.yaml``: the six ELo tasks, the
  baselines' heads and distillation at every level), features shared: each encoder runs
  once per (modality, view);
* the same terms, naive: every term re-encodes its inputs;
* encoders only: the forward/backward of exactly the shared passes, no heads (the floor
  that sharing can reach).

    python benchmarks/bench_step.py [--steps 5] [--batch 8] [--size 64] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch

from elo.config import load_config
from elo.model.network import ELoModel
from elo.model.objective import Weights, terms_from_config
from elo.model.terms import TermKey


def make_batch(cfg: dict[str, Any], b: int, gen: torch.Generator) -> dict[str, Any]:
    clip = cfg["data"]["clip"]
    t, s = int(clip["frames"]), int(clip["size"])
    tm = int(t / float(clip["fps"]) * 16000) // 160 + 1
    ones = torch.ones(b, dtype=torch.bool)
    return {
        "rgb": torch.randn(b, 3, t, s, s, generator=gen),  # B,3,T,H,W
        "flow": torch.randn(b, 2, t - 1, s, s, generator=gen).clamp(-1, 1),  # B,2,T-1,H,W
        "audio": torch.randn(b, 1, 40, tm, generator=gen),  # B,1,F,Tm
        "present": {"rgb": ones, "flow": ones, "audio": ones},
        "meta": {},
    }


def time_steps(
    model: ELoModel, batch: dict[str, Any], steps: int, encoders_only: bool = False
) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    times = []
    for i in range(steps + 1):  # the first step warms up
        t0 = time.perf_counter()
        if encoders_only:
            views, _ = model.make_views(batch, i, model.encoded_views)
            feats = [model.encoders[m](views[(m, v)]) for m, v in model.encoded_views]
            loss = torch.stack(
                [f.embedding.mean() + sum(p.mean() for p in f.pyramid) for f in feats]
            ).sum()
        else:
            loss = model(batch, step=i).total
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.after_step(i + 1, steps + 1)
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = load_config("demo", [f"data.clip.size={args.size}"])
    terms = terms_from_config(cfg)
    batch = make_batch(cfg, args.batch, torch.Generator().manual_seed(0))
    one = TermKey.parse("rgb/reconstruction")

    def model(weights: Weights, **kw: Any) -> ELoModel:
        torch.manual_seed(0)
        return ELoModel(cfg, weights, **kw).train()

    all_w = Weights.uniform(terms)
    shared = model(all_w)
    rows = [
        (
            "one term (rgb/reconstruction)",
            1,
            1,
            time_steps(model(Weights([one], {str(one): 1.0})), batch, args.steps),
        ),
        (
            f"all {len(terms)} default terms, shared",
            len(terms),
            len(shared.encoded_views),
            time_steps(shared, batch, args.steps),
        ),
        (
            "all default terms, naive re-encode",
            len(terms),
            None,
            time_steps(model(all_w, share_features=False), batch, args.steps),
        ),
        (
            "encoders only (same passes, no heads)",
            0,
            len(shared.encoded_views),
            time_steps(shared, batch, args.steps, encoders_only=True),
        ),
    ]
    single, allt, naive, enc = (r[3] for r in rows)
    print(f"batch {args.batch}, clips {cfg['data']['clip']['frames']}x{args.size}x{args.size}, "
          f"model tiny, {args.threads} threads, median of {args.steps} steps")  # fmt: skip
    print(f"{'setting':42s} {'terms':>5s} {'passes':>6s} {'s/step':>8s} {'x one term':>10s}")
    for name, n, passes, t in rows:
        print(
            f"{name:42s} {n:5d} {passes if passes is not None else '-':>6} {t:8.3f} {t / single:10.2f}"
        )
    print(f"all-terms / single-term      = {allt / single:.2f}x")
    print(f"naive / shared               = {naive / allt:.2f}x")
    print(f"shared / encoders-only floor = {allt / enc:.2f}x   (head + loss overhead)")


if __name__ == "__main__":
    main()
