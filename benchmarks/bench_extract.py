"""Extraction throughput on the demo dataset, measured side by side in one run.

    python benchmarks/bench_extract.py [--clips 400] [--data DIR] [--workers 2]

Rows: frames/s for decode alone, decode+flow, decode+flow+mel (one process, one
thread), then the full extraction with 1 process vs ``--workers`` processes, then one
epoch through the DataLoader uncached (decode + extract + read) vs cached (read only).
Issue 3 targets: cached epoch >= 10x faster than uncached; 2 workers >= 1.6x 1 worker.
Run it on a quiet machine: other processes on the same cores skew the ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def _rate(frames: int, seconds: float) -> str:
    return f"{frames / seconds:9.0f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--clips", type=int, default=400, help="demo clips to generate")
    p.add_argument("--data", help="existing video folder (default: generate a demo set)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--batch-size", type=int, default=32)
    args = p.parse_args(argv)

    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    from elo.config import load_config
    from elo.data.cache import spec_from_config
    from elo.data.datasets import open_dataset
    from elo.data.demo_data import make_demo
    from elo.data.extract import extract_paths, find_videos
    from elo.data.video import clip_starts, cut_clips, decode_video
    from elo.model.modality import MODALITIES

    tmp = Path(tempfile.mkdtemp(prefix="elo-bench-"))
    try:
        if args.data:
            root = Path(args.data)
        else:
            t = time.perf_counter()
            root = make_demo(tmp / "demo", clips=args.clips, seed=0, workers=args.workers)
            print(f"generated {args.clips} demo clips in {time.perf_counter() - t:.1f} s "
                  f"({args.workers} processes)")  # fmt: skip
        cfg = load_config("demo")
        spec = spec_from_config(cfg)
        paths = find_videos(root)
        flow, audio = MODALITIES.get("flow"), MODALITIES.get("audio")
        fp, ap = spec.modalities["flow"], spec.modalities["audio"]
        rows: list[tuple[str, str, str]] = []

        def stage(with_flow: bool, with_mel: bool) -> tuple[int, float]:
            n, t0 = 0, time.perf_counter()
            for path in paths:
                v = decode_video(path, fps=spec.fps, size=spec.size, sample_rate=spec.sample_rate,
                                 audio=with_mel)  # fmt: skip
                n += len(v.frames)
                for clip in cut_clips(v, spec.frames, clip_starts(len(v.frames), spec.frames)):
                    if with_flow:
                        flow.extract(clip, fp)
                    if with_mel:
                        audio.extract(clip, ap)
            return n, time.perf_counter() - t0

        for label, wf, wm in (("decode", False, False), ("decode+flow", True, False),
                              ("decode+flow+mel", True, True)):  # fmt: skip
            n, sec = stage(wf, wm)
            rows.append((f"{label} (1 core)", _rate(n, sec), f"{sec:6.2f} s"))

        frames = 0
        times = {}
        for w in (1, args.workers):
            cache = tmp / f"cache-w{w}"
            t0 = time.perf_counter()
            s = extract_paths(paths, cache, spec, workers=w, progress=False)
            times[w] = time.perf_counter() - t0
            frames = s.frames
            rows.append((f"elo-extract, {w} process{'es' if w > 1 else ''}", _rate(s.frames, times[w]),
                         f"{times[w]:6.2f} s"))  # fmt: skip

        def epoch(cache: Path) -> float:
            t0 = time.perf_counter()
            ds = open_dataset(cfg, root, cache_dir=cache, extract_workers=0)
            loader = torch.utils.data.DataLoader(
                ds, batch_size=args.batch_size, collate_fn=_collate()
            )
            for _ in loader:
                pass
            return time.perf_counter() - t0

        uncached = epoch(tmp / "cache-epoch")
        cached = epoch(tmp / "cache-epoch")
        n_clips = len(open_dataset(cfg, root, cache_dir=tmp / "cache-epoch", extract=False))
        rows.append(
            (
                "epoch uncached (1 process)",
                f"{n_clips / uncached:9.0f} clips/s",
                f"{uncached:6.2f} s",
            )
        )
        rows.append(
            ("epoch cached (1 process)", f"{n_clips / cached:9.0f} clips/s", f"{cached:6.2f} s")
        )

        print(f"\n{len(paths)} videos, {frames} frames at {spec.fps:g} fps, {spec.size}x{spec.size}, "
              f"clip T={spec.frames}; {os.cpu_count()} CPUs")  # fmt: skip
        print(f"{'stage':34s} {'frames/s':>16s} {'time':>9s}")
        for name, rate, sec in rows:
            print(f"{name:34s} {rate:>16s} {sec:>9s}")
        print(
            f"\nspeed-up {args.workers} processes vs 1: {times[1] / times[args.workers]:.2f}x (target >= 1.6x)"
        )
        print(f"cached epoch vs uncached: {uncached / cached:.1f}x faster (target >= 10x)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _collate():  # type: ignore[no-untyped-def]
    from elo.data.datasets import collate

    return collate


if __name__ == "__main__":
    sys.exit(main())
