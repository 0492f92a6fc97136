"""One scale for all terms? Per-term gradient norms reaching the RGB encoder at step 0
under uniform λ: raw (``objective.normalize: none``), ``ema`` (each term divided by a
running mean of its own |loss|) and ``grad`` (the default: that mean times the term's
gradient norm per unit loss at the first step; ``elo/model/network.py``).

    nice -n 5 .venv/bin/python benchmarks/bench_grad_scale.py --data data/demo

Prints, for every default term whose gradient reaches the RGB encoder, the norm of
d(λ_k L_k / s_k)/dθ_rgb on one real demo batch, and the max/min ratio over terms
(target: within 10x; raw on the demo generator before commit 5b1c032: 0.0035 to 15.4).
``grad`` equalises the norms over *all* encoders a term reaches, so the RGB part of a
term that also trains a flow or audio encoder is below 1.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--data", default="data/demo")
    p.add_argument("--config", default="demo")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("overrides", nargs="*", help="config key=value overrides")
    args = p.parse_args(argv)

    import torch

    from elo.config import load_config
    from elo.data.datasets import make_loader
    from elo.model.network import ELoModel
    from elo.model.objective import Weights, terms_from_config

    torch.set_num_threads(1)
    norms: dict[str, dict[str, float]] = {}
    for mode in ("none", "ema", "grad"):
        cfg = load_config(args.config, [*args.overrides, f"objective.normalize={mode}"])
        terms = terms_from_config(cfg)
        loader = make_loader(
            cfg,
            Path(args.data),
            split="train",
            batch_size=args.batch,
            shuffle=True,
            seed=args.seed,
            uncropped=True,
        )
        batch = next(iter(loader))
        torch.manual_seed(args.seed)
        model = ELoModel(cfg, Weights.uniform(terms), seed=args.seed)
        model.train()
        out = model(batch, step=0)
        params = [q for q in model.encoders["rgb"].parameters() if q.requires_grad]
        for key, value in out.weighted.items():
            grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
            sq = sum(float(g.pow(2).sum()) for g in grads if g is not None)
            if sq > 0:
                norms.setdefault(key, {})[mode] = sq**0.5
    nan = float("nan")
    print(f"{'term':28s} {'raw':>10s} {'ema':>10s} {'grad':>10s}")
    for key, v in sorted(norms.items(), key=lambda kv: kv[1].get("none", 0.0)):
        print(
            f"{key:28s} {v.get('none', nan):10.4g} {v.get('ema', nan):10.4g} "
            f"{v.get('grad', nan):10.4g}"
        )
    for mode, name in (("none", "raw"), ("ema", "ema"), ("grad", "grad (default)")):
        vals = [v[mode] for v in norms.values() if mode in v]
        print(f"{name}: max/min = {max(vals) / min(vals):.1f}x over {len(vals)} terms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
