"""Parallel extraction of modality tensors into the on-disk cache (``elo-extract``).

One task per video file, run on a process pool (``concurrent.futures``, one process
per core, each single-threaded). A file that cannot be used (missing, zero-length,
symlink loop, directory, not a video, truncated, audio-only, too short) is skipped
with a one-line reason that goes to the report (JSON lines) and into the summary
counts; it never stops the run. Finished files are committed to the cache one by one,
so a killed run keeps them and the next run continues where it stopped. One file's
extraction, :func:`extract_one`, is in :mod:`elo.data.extract_file`; this module drives
the run (the cache lock, the skip report, the process pool).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elo.data.cache import ClipCache, ExtractSpec, Window, clear_stale_temps
from elo.data.discover import MediaScan, walk_media
from elo.data.extract_file import extract_one, skip_record
from elo.data.video import VIDEO_SUFFIXES
from elo.errors import DataError
from elo.rundir import DirLock, append_jsonl

__all__ = [
    "ExtractSummary",
    "extract_one",
    "extract_paths",
    "find_videos",
    "video_scan",
]

log = logging.getLogger(__name__)


def find_videos(root: str | Path) -> list[Path]:
    """Every entry under ``root`` whose name ends in a video suffix, sorted, through
    symlinked folders (symlink loops skipped and logged; :mod:`elo.data.discover`).
    Includes directories and dangling / looping symlinks named like videos, so they are
    reported as skipped instead of silently ignored; hidden entries are left out."""
    return video_scan(root).files


def video_scan(root: str | Path) -> MediaScan:
    """:func:`find_videos` with what the walk saw (folders, symlinks, loops), for
    messages such as ``8 folders, 0 videos; 8 are symlinks to missing targets ...``."""
    return walk_media(root, VIDEO_SUFFIXES)


@dataclass
class ExtractSummary:
    """Counts of one extraction run; ``reasons`` counts skip reasons by kind."""

    ok: int = 0
    cached: int = 0
    skipped: int = 0
    clips: int = 0
    frames: int = 0
    padded: int = 0  # short videos lengthened by repeating their last frame
    transient: int = 0  # skips for I/O or resource errors (retried next run)
    seconds: float = 0.0
    reasons: collections.Counter[str] = field(default_factory=collections.Counter)
    records: list[dict[str, Any]] = field(default_factory=list)
    report: Path | None = None

    def add(self, rec: Mapping[str, Any]) -> None:
        self.records.append(dict(rec))
        status = rec["status"]
        if status == "skipped":
            self.skipped += 1
            self.transient += int(bool(rec.get("transient")))
            self.reasons[_reason_kind(str(rec["reason"]))] += 1
        else:
            setattr(self, status, getattr(self, status) + 1)
            self.clips += int(rec["clips"])
            self.frames += int(rec["frames"])
            self.padded += int(bool(rec.get("padded")))

    def line(self) -> str:
        why = ", ".join(f"{k}: {v}" for k, v in sorted(self.reasons.items()))
        rate = self.clips / self.seconds if self.seconds > 0 else 0.0
        text = (
            f"{self.ok} extracted, {self.cached} cached, {self.skipped} skipped; "
            f"{self.clips} clips in {self.seconds:.1f} s ({rate:.1f} clips/s)"
        )
        if self.padded:
            text += f"; {self.padded} shorter than a clip, padded (last frame repeated)"
        if why:
            text += f"; skipped: {why}"
        if self.transient:
            text += f" ({self.transient} I/O or resource errors: retried next run)"
        if self.report is not None and self.skipped:
            text += f" (reasons in {self.report})"
        return text


def _reason_kind(reason: str) -> str:
    """A short bucket for a skip reason: the text before the first ':' or '('."""
    head = reason.split(":")[0].split("(")[0].strip()
    return head[:60] or "unknown"


@contextlib.contextmanager
def _single_threaded() -> Iterator[None]:
    """One thread for torch and OpenCV while extracting in this process: per-clip ops
    are tiny, and thread hand-offs made the mel 20x slower on a busy 2-core machine."""
    import cv2
    import torch

    nt, ncv = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        torch.set_num_threads(nt)
        cv2.setNumThreads(ncv)


def _worker_init() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def extract_paths(
    paths: Iterable[str | Path | tuple[str | Path, Window | None]],
    cache_dir: str | Path,
    spec: ExtractSpec,
    *,
    workers: int | None = None,
    progress: bool = True,
    report: str | Path | None = None,
    retry_skipped: bool = False,
) -> ExtractSummary:
    """Extract ``paths`` into ``cache_dir`` with ``workers`` processes (``None``: all
    cores; ``0``/``1``: in this process). Skips are appended to ``report`` (default
    ``<cache>/extract_report.jsonl``) as JSON lines, then one summary line. Workers
    start from a forkserver: in a script, call this under ``if __name__ == "__main__":``.
    The cache is locked for the run (:class:`~elo.rundir.DirLock`): a second writer
    waits, and only temp files of dead processes are cleaned up. An item may be
    ``(path, (start, end))``: only that window of an untrimmed video (Kinetics)."""
    path_list = [_source(p) for p in paths]
    cache = ClipCache(cache_dir)
    cache.check_writable()
    # one writer per cache: a second elo-extract (or search) on it waits its turn
    lock = DirLock(cache.root, "elo-extract", wait=True).acquire()
    clear_stale_temps(cache.root)
    report_path = Path(report) if report is not None else cache.report_path()
    n_workers = (os.cpu_count() or 1) if workers is None else max(0, int(workers))
    n_workers = min(n_workers, max(1, len(path_list)))
    run = _RunRecords(report_path, len(path_list), progress)
    try:
        # cached and unusable files are settled here, without a pool
        todo = [p for p in path_list if not _settle(p, cache, spec, retry_skipped, run.done)]
        if n_workers <= 1 or len(todo) < 4:
            with _single_threaded():
                for p in todo:
                    run.done(extract_one(p[0], cache.root, spec, retry_skipped, p[1]))
        else:
            n = min(n_workers, len(todo))
            _run_pool(todo, cache.root, spec, n, run.done, retry_skipped)
    finally:
        run.close()
        lock.release()
    return run.summary


class _RunRecords:
    """Where each file's record goes during a run: the summary, the skip report (JSON
    lines, one ``run`` id) and the progress bar; :meth:`close` adds the summary line."""

    def __init__(self, report: Path, total: int, progress: bool) -> None:
        from tqdm import tqdm

        self.report = report
        self.summary = ExtractSummary(report=report)
        self.run_id = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.t0 = time.perf_counter()
        self.bar = tqdm(total=total, unit="video", disable=not progress, dynamic_ncols=True)

    def done(self, rec: Mapping[str, Any]) -> None:
        summary = self.summary
        summary.add(rec)
        if rec["status"] == "skipped":
            log.debug("skip %s: %s", rec["path"], rec["reason"])
            append_jsonl(self.report, {"kind": "skip", "run": self.run_id, **rec})
        elapsed = time.perf_counter() - self.t0
        self.bar.set_postfix(
            clips_s=f"{summary.clips / max(elapsed, 1e-9):.1f}", skipped=summary.skipped
        )
        self.bar.update(1)

    def close(self) -> None:
        summary = self.summary
        self.bar.close()
        summary.seconds = time.perf_counter() - self.t0
        append_jsonl(
            self.report,
            {
                "kind": "summary",
                "run": self.run_id,
                "ok": summary.ok,
                "cached": summary.cached,
                "skipped": summary.skipped,
                "clips": summary.clips,
                "seconds": summary.seconds,
                "padded": summary.padded,
                "transient": summary.transient,
                "reasons": dict(summary.reasons),
            },
        )


def _settle(
    item: Source, cache: ClipCache, spec: ExtractSpec, retry: bool, done: Callable[..., None]
) -> bool:
    """Record ``item`` now, in this process, if its entry is complete or a remembered
    skip (not retried) or the file is unusable; ``False``: it needs extracting."""
    path, window = item
    try:
        entry = cache.entry(path, spec, window)
        settled = cache.complete(entry, spec)
        if retry and settled and (entry.clips() or {}).get("error"):
            settled = False
    except (DataError, OSError):
        settled = True
    if settled:
        done(extract_one(path, cache.root, spec, retry, window))
    return settled


def _forkserver_preload() -> list[str]:
    """The modules a forkserver imports once for all its workers: the extraction stack
    and the module of every registered modality (a drop-in modality included)."""
    from elo.model.modality import MODALITIES

    modules = {MODALITIES.get(name).__module__ for name in MODALITIES.list()}
    return ["elo.data.extract", "elo.data.video", *sorted(modules - {"__main__"})]


def _mp_context() -> Any:
    """Workers come from a forkserver that has imported the decoding stack once, so a
    pool starts in milliseconds after the first. Plain fork is unsafe here: a parent
    that has used OpenCV's or OpenMP's thread pools deadlocks its forked children
    (seen: a child stuck in cv2's pthread_cond_destroy); spawn re-imports torch per
    worker. ``ELO_START_METHOD`` overrides (fork / spawn / forkserver)."""
    import multiprocessing as mp

    method = os.environ.get("ELO_START_METHOD") or (
        "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    )
    ctx = mp.get_context(method)
    if method == "forkserver":
        # imported once in the server instead of once per worker
        ctx.set_forkserver_preload(_forkserver_preload())
    return ctx


#: a file to extract and the (start, end) seconds of it a dataset row covers (or None)
Source = tuple[Path, Window | None]


def _source(item: str | Path | tuple[str | Path, Window | None]) -> Source:
    if isinstance(item, tuple):
        return Path(item[0]), item[1]
    return Path(item), None


def _run_pool(
    paths: Sequence[Source], root: Path, spec: ExtractSpec, n: int, done: Any, retry: bool = False
) -> None:
    """Run ``paths`` on ``n`` processes. If a worker dies (a decoder crash takes the
    whole pool down), the files that were in flight are retried one by one in
    isolated processes, so only the culprit is skipped, and the rest continue."""
    queue = list(paths)
    while queue:
        suspects, queue = _pool_pass(queue, root, spec, n, done, retry)
        for p in suspects:
            if not _pool_pass([p], root, spec, 1, done, retry)[0]:
                continue
            reason = "worker crashed while decoding (decoder fault?)"
            done(skip_record(p[0], reason, time.perf_counter()))


def _pool_pass(
    paths: Sequence[Source], root: Path, spec: ExtractSpec, n: int, done: Any, retry: bool = False
) -> tuple[list[Source], list[Source]]:
    """One pool over ``paths``; returns (in flight when the pool broke, never started)."""
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    pending = list(paths)[::-1]  # a stack: pop() takes the next file
    live: dict[Any, Source] = {}
    pool = ProcessPoolExecutor(max_workers=n, mp_context=_mp_context(), initializer=_worker_init)
    broken = False
    try:
        while pending or live:
            while pending and len(live) < 4 * n:  # a bounded queue: a kill loses little
                p = pending.pop()
                # this module's name, read per call: a test may replace it here
                live[pool.submit(extract_one, p[0], root, spec, retry, p[1])] = p
            finished, _ = wait(list(live), return_when=FIRST_COMPLETED)
            for fut in finished:
                try:
                    rec = fut.result()
                except BrokenProcessPool:
                    broken = True
                    return list(live.values()), pending[::-1]
                done(rec)
                live.pop(fut)
    except BaseException:
        broken = True
        raise
    finally:  # don't wait for a broken or interrupted pool
        pool.shutdown(wait=not broken, cancel_futures=True)
    return [], []
