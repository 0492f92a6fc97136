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

``--speedups`` instead times one training step of the demo model (all
default terms, the demo profile's clip and batch) eager beside ``torch.compile`` of its
encoders (default mode and ``mode="reduce-overhead"``), of the whole model, and
``channels_last_3d`` weights and inputs: the median and spread of ``--steps`` timed
steps after warm-up, and the compile time (the warm-up steps' time beyond eager's).

    python benchmarks/bench_step.py --speedups --steps 20 [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Sequence
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


def timed(
    model: ELoModel, batch: dict[str, Any], steps: int, warmup: int
) -> tuple[list[float], float]:
    """Per-step seconds of ``steps`` training steps after ``warmup`` untimed ones, and
    the warm-up's total time (where a compiled model compiles)."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    times, t_warm = [], 0.0
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        loss = model(batch, step=i).total
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.after_step(i + 1, warmup + steps)
        dt = time.perf_counter() - t0
        if i < warmup:
            t_warm += dt
        else:
            times.append(dt)
    return times, t_warm


def variant(cfg: dict[str, Any], name: str) -> ELoModel:
    """The demo model (all default terms, seed 0) prepared as ``name`` says."""
    torch.manual_seed(0)
    model = ELoModel(cfg, Weights.uniform(terms_from_config(cfg))).train()
    if name.startswith("compile"):
        # ELoModel's step runs more than one backward through the encoders' graph
        # (retain_graph); compiled backwards that donate their buffers refuse that
        import torch._functorch.config as functorch_config

        functorch_config.donated_buffer = False
    if name.startswith("compile encoders"):
        mode = "reduce-overhead" if "reduce" in name else "default"
        for m in list(model.encoders):
            model.encoders[m] = torch.compile(model.encoders[m], mode=mode)  # type: ignore[assignment]
    elif name == "compile model":
        model.forward = torch.compile(model.forward)  # type: ignore[method-assign]
    elif name == "channels_last_3d":  # the 3-D convs' weights; 2-D (audio) ones stay
        for prm in model.parameters():
            if prm.dim() == 5:
                prm.data = prm.data.contiguous(memory_format=torch.channels_last_3d)
    return model


VARIANTS = (
    "eager",
    "channels_last_3d",
    "compile encoders",
    "compile encoders reduce-overhead",
    "compile model",
)


def speedups(steps: int, warmup: int, threads: int, names: Sequence[str] = VARIANTS) -> None:
    """Eager vs torch.compile vs channels_last_3d on the demo model (module docstring)."""
    import torch._dynamo

    cfg = load_config("demo")
    clip = cfg["data"]["clip"]
    cached = {  # what the demo cache holds; the model cuts its own window and square
        "frames": int(clip["frames"]) + int(clip["extra_frames"]),
        "size": int(clip["size"]) + int(clip["extra_pixels"]),
        "fps": clip["fps"],
    }
    b = int(cfg["train"]["batch_size"])
    base = make_batch({"data": {"clip": cached}}, b, torch.Generator().manual_seed(0))
    cl = {
        k: v.contiguous(memory_format=torch.channels_last_3d) if k in ("rgb", "flow") else v
        for k, v in base.items()
    }
    rows = []
    for name in ("eager", *(n for n in names if n != "eager")):
        torch._dynamo.reset()
        try:
            model = variant(cfg, name)
            t, warm = timed(model, cl if name == "channels_last_3d" else base, steps, warmup)
        except Exception as exc:  # a mode this CPU build cannot run: say so, go on
            print(f"{name}: failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            continue
        rows.append((name, t, warm))
        print(f"{name}: median {statistics.median(t):.3f} s, warm-up {warm:.1f} s", flush=True)
    eager_med = statistics.median(rows[0][1])
    eager_warm = rows[0][2]
    n_terms = len(terms_from_config(cfg))
    print(
        f"demo model, {n_terms} terms, batch {b}, clips {cached['frames']}x{cached['size']}^2 "
        f"cached -> {clip['frames']}x{clip['size']}^2, {threads} threads, {warmup} warm-up + "
        f"{steps} timed steps, load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(
        f"{'variant':34s} {'median s':>9s} {'p10':>7s} {'p90':>7s} {'speed-up':>9s} "
        f"{'compile s':>9s}"
    )
    for name, t, warm in rows:
        q = statistics.quantiles(t, n=10)
        med = statistics.median(t)
        print(
            f"{name:34s} {med:9.3f} {q[0]:7.3f} {q[-1]:7.3f} {eager_med / med:8.2f}x "
            f"{max(0.0, warm - eager_warm):9.1f}"
        )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--speedups", action="store_true", help="compile / channels_last rows")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps (--speedups)")
    p.add_argument(
        "--variants", default=",".join(VARIANTS), help="--speedups rows, comma-separated"
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.speedups:
        speedups(args.steps, args.warmup, args.threads, args.variants.split(","))
        return
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
    print(
        f"batch {args.batch}, clips {cfg['data']['clip']['frames']}x{args.size}x{args.size}, "
        f"model tiny, {args.threads} threads, median of {args.steps} steps"
    )
    print(f"{'setting':42s} {'terms':>5s} {'passes':>6s} {'s/step':>8s} {'x one term':>10s}")
    for name, n, passes, t in rows:
        shown = passes if passes is not None else "-"
        print(f"{name:42s} {n:5d} {shown:>6} {t:8.3f} {t / single:10.2f}")
    print(f"all-terms / single-term      = {allt / single:.2f}x")
    print(f"naive / shared               = {naive / allt:.2f}x")
    print(f"shared / encoders-only floor = {allt / enc:.2f}x   (head + loss overhead)")


if __name__ == "__main__":
    main()
