"""Extraction throughput on the demo dataset, measured side by side in one run.

    python benchmarks/bench_extract.py [--clips 400] [--data DIR] [--workers 2]

Rows: frames/s for decode alone, decode+flow, decode+flow+mel (one process, one
thread), then the full extraction with 1 process vs ``--workers`` processes, then one
epoch through the DataLoader uncached (decode + extract + read) vs cached (read only).
Targets: cached epoch >= 10x faster than uncached; 2 workers >= 1.6x 1 worker.
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
from typing import Any


def _rate(frames: int, seconds: float) -> str:
    return f"{frames / seconds:9.0f}"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--clips", type=int, default=400, help="demo clips to generate")
    p.add_argument("--data", help="existing video folder (default: generate a demo set)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--batch-size", type=int, default=32)
    return p.parse_args(argv)


def _dataset(args: argparse.Namespace, tmp: Path) -> Path:
    """``--data``, else a demo set of ``--clips`` clips generated in ``tmp``."""
    from elo.data.demo_data import make_demo

    if args.data:
        return Path(args.data)
    t = time.perf_counter()
    root = make_demo(tmp / "demo", clips=args.clips, seed=0, workers=args.workers)
    dt = time.perf_counter() - t
    print(f"generated {args.clips} demo clips in {dt:.1f} s ({args.workers} processes)")
    return root


def _stage_rows(paths: list[Path], spec: Any) -> list[tuple[str, str, str]]:
    """Frames/s of decode alone, decode+flow and decode+flow+mel, one process."""
    from elo.data.video import clip_starts, cut_clips, decode_video
    from elo.model.modality import MODALITIES

    flow, audio = MODALITIES.get("flow"), MODALITIES.get("audio")
    fp, ap = spec.modalities["flow"], spec.modalities["audio"]

    def stage(with_flow: bool, with_mel: bool) -> tuple[int, float]:
        n, t0 = 0, time.perf_counter()
        for path in paths:
            v = decode_video(
                path, fps=spec.fps, size=spec.size, sample_rate=spec.sample_rate, audio=with_mel
            )
            n += len(v.frames)
            for clip in cut_clips(v, spec.frames, clip_starts(len(v.frames), spec.frames)):
                if with_flow:
                    flow.extract(clip, fp)
                if with_mel:
                    audio.extract(clip, ap)
        return n, time.perf_counter() - t0

    rows = []
    stages = (("decode", False, False), ("decode+flow", True, False))
    for label, wf, wm in (*stages, ("decode+flow+mel", True, True)):
        n, sec = stage(wf, wm)
        rows.append((f"{label} (1 core)", _rate(n, sec), f"{sec:6.2f} s"))
    return rows


def _extract_rows(
    paths: list[Path], spec: Any, tmp: Path, workers: int
) -> tuple[list[tuple[str, str, str]], dict[int, float], int]:
    """The full extraction with 1 process and with ``workers``: the rows, the seconds
    by process count, and the frames extracted."""
    from elo.data.extract import extract_paths

    rows, frames, times = [], 0, {}
    for w in (1, workers):
        t0 = time.perf_counter()
        s = extract_paths(paths, tmp / f"cache-w{w}", spec, workers=w, progress=False)
        times[w] = time.perf_counter() - t0
        frames = s.frames
        name = f"elo-extract, {w} process{'es' if w > 1 else ''}"
        rows.append((name, _rate(s.frames, times[w]), f"{times[w]:6.2f} s"))
    return rows, times, frames


def _epoch_rows(
    cfg: Any, root: Path, cache: Path, batch_size: int
) -> tuple[list[tuple[str, str, str]], float]:
    """One DataLoader epoch uncached (decode + extract + read), then cached (read only):
    the rows and the speed-up."""
    import torch

    from elo.data.datasets import open_dataset

    def epoch() -> float:
        t0 = time.perf_counter()
        ds = open_dataset(cfg, root, cache_dir=cache, extract_workers=0)
        for _ in torch.utils.data.DataLoader(ds, batch_size=batch_size, collate_fn=_collate()):
            pass
        return time.perf_counter() - t0

    uncached, cached = epoch(), epoch()
    n_clips = len(open_dataset(cfg, root, cache_dir=cache, extract=False))
    rows = [
        ("epoch uncached (1 process)", f"{n_clips / uncached:9.0f} clips/s", f"{uncached:6.2f} s"),
        ("epoch cached (1 process)", f"{n_clips / cached:9.0f} clips/s", f"{cached:6.2f} s"),
    ]
    return rows, uncached / cached


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)

    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    from elo.config import load_config
    from elo.data.cache import spec_from_config
    from elo.data.extract import find_videos

    tmp = Path(tempfile.mkdtemp(prefix="elo-bench-"))
    try:
        root = _dataset(args, tmp)
        cfg = load_config("demo")
        spec = spec_from_config(cfg)
        paths = find_videos(root)
        rows = _stage_rows(paths, spec)
        extracted, times, frames = _extract_rows(paths, spec, tmp, args.workers)
        epochs, faster = _epoch_rows(cfg, root, tmp / "cache-epoch", args.batch_size)
        print(
            f"\n{len(paths)} videos, {frames} frames at {spec.fps:g} fps, "
            f"{spec.size}x{spec.size}, clip T={spec.frames}; {os.cpu_count()} CPUs"
        )
        print(f"{'stage':34s} {'frames/s':>16s} {'time':>9s}")
        for name, rate, sec in [*rows, *extracted, *epochs]:
            print(f"{name:34s} {rate:>16s} {sec:>9s}")
        speedup = times[1] / times[args.workers]
        print(f"\nspeed-up {args.workers} processes vs 1: {speedup:.2f}x (target >= 1.6x)")
        print(f"cached epoch vs uncached: {faster:.1f}x faster (target >= 10x)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _collate():  # type: ignore[no-untyped-def]
    from elo.data.datasets import collate

    return collate


if __name__ == "__main__":
    sys.exit(main())
