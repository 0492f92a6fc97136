"""``elo-extract``: decode videos and cache modality tensors."""

from __future__ import annotations

import argparse
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data_dir", help="folder of videos (any tree) or a CSV manifest")
    p.add_argument("--cache", required=False, help="cache folder (default: <data_dir>-cache)")
    p.add_argument("--config", default="demo", help="experiment config (for data params)")
    p.add_argument("--workers", type=int, help="processes (default: all CPUs)")
    p.add_argument(
        "--modalities", default="rgb,flow,audio", help="comma-separated modalities to cache"
    )
    p.add_argument(
        "--report", help="skip report, JSON lines (default: <cache>/extract_report.jsonl)"
    )
    p.add_argument(
        "--retry-skipped",
        action="store_true",
        help="retry files a previous run skipped for their content (remembered skips)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", help="config overrides key=value")


def _kinetics_windows(root: Any) -> list[Any]:
    """(path, window) per row of a Kinetics folder (an untrimmed video is extracted
    only over its rows' windows, docs/datasets.md); [] for any other layout."""
    from elo.data.layouts import scan
    from elo.errors import DataError

    try:
        index = scan(root)
    except DataError:
        return []  # not a layout index: the plain folder walk reports what is wrong
    if index.layout != "kinetics":
        return []
    return list(dict.fromkeys((r.path, r.window) for r in index.records))


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from elo.config import load_config
    from elo.data.cache import spec_from_config
    from elo.data.datasets import default_cache_dir
    from elo.data.extract import extract_paths, video_scan
    from elo.data.layouts import read_manifest
    from elo.errors import DataError

    cfg = load_config(args.config, args.overrides)
    mods = [m.strip() for m in args.modalities.split(",") if m.strip()]
    spec = spec_from_config(cfg, mods)
    root = Path(args.data_dir)
    paths: list[Any]
    if root.suffix.lower() == ".csv":
        paths = [r.path for r in read_manifest(root).records]
    else:
        paths = _kinetics_windows(root) or video_scan(root).files
    if not paths:
        found = video_scan(root)
        raise DataError(
            f"{root}: no video files found (looked for .mp4 .avi .mkv .webm .mov ...): "
            f"{found.summary()}"
        )
    cache = Path(args.cache) if args.cache else default_cache_dir(root)
    summary = extract_paths(
        paths,
        cache,
        spec,
        workers=args.workers,
        progress=not args.no_progress,
        report=args.report,
        retry_skipped=args.retry_skipped,
    )
    print(f"elo-extract: {summary.line()}")
    print(f"elo-extract: cache {cache}")
    if summary.ok + summary.cached == 0:
        raise DataError(
            f"{root}: none of {len(paths)} files could be extracted (see {summary.report})"
        )
    return 0
