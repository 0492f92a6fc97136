"""Parallel extraction of modality tensors into the on-disk cache (``elo-extract``).

One task per video file, run on a process pool (``concurrent.futures``, one process
per core, each single-threaded). A file that cannot be used (missing, zero-length,
symlink loop, directory, not a video, truncated, audio-only, too short) is skipped
with a one-line reason that goes to the report (JSON lines) and into the summary
counts; it never stops the run. Finished files are committed to the cache one by one,
so a killed run keeps them and the next run continues where it stopped.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elo.data.cache import CacheEntry, ClipCache, ExtractSpec, Window, clear_stale_temps
from elo.data.video import VIDEO_SUFFIXES
from elo.errors import DataError, TransientDataError
from elo.rundir import DirLock, append_jsonl, disk_errors

log = logging.getLogger(__name__)


def find_videos(root: str | Path) -> list[Path]:
    """Every entry under ``root`` whose name ends in a video suffix, sorted. Includes
    directories and dangling / looping symlinks named like videos, so they are
    reported as skipped instead of silently ignored; hidden entries are left out.
    Symlinked folders are not followed (no loops)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder of videos")
    out = []
    for dirpath, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in [*files, *dirs]:
            if not name.startswith(".") and Path(name).suffix.lower() in VIDEO_SUFFIXES:
                out.append(Path(dirpath) / name)
    return sorted(out)


def _skip(
    path: Path, reason: str, t0: float, cached: bool = False, transient: bool = False
) -> dict[str, Any]:
    return {
        "path": str(path),
        "status": "skipped",
        "reason": reason,
        "remembered": cached,
        "transient": transient,
        "clips": 0,
        "frames": 0,
        "seconds": time.perf_counter() - t0,
    }


def _reason(exc: BaseException, path: Path) -> str:
    msg = str(exc)
    prefix = f"{path}: "
    return msg[len(prefix) :] if msg.startswith(prefix) else msg


def extract_one(
    path: str | Path,
    cache_root: str | Path,
    spec: ExtractSpec,
    retry_skipped: bool = False,
    window: Window | None = None,
) -> dict[str, Any]:
    """Decode one file and cache every modality of ``spec`` it lacks; a record with
    ``status`` ok / cached / skipped (+ ``reason``). Never raises for a bad file.

    Only content errors (not a video, truncated, too short, non-finite values) are
    remembered in the cache; an I/O or resource failure (EIO, EACCES, EMFILE, ENOMEM)
    is reported with ``transient: true`` and retried by the next run. A remembered
    skip is retried when ``retry_skipped`` (``elo-extract --retry-skipped``). A disk
    that refuses a cache write raises :class:`DiskError` (one line, the path).
    ``window`` = (start, end) seconds: only that span of the file (its own entry)."""
    import numpy as np

    from elo.data.video import clip_starts, cut_clips, decode_video, is_transient, pad_video
    from elo.model.modality import MODALITIES

    path = Path(path)
    t0 = time.perf_counter()
    cache = ClipCache(cache_root)
    try:
        entry = cache.entry(path, spec, window)
        info = entry.clips()
    except DataError as exc:
        return _skip(path, _reason(exc, path), t0)
    except OSError as exc:  # the cache entry could not be read: not the file's fault
        return _skip(path, f"cannot read the cache entry ({exc.strerror})", t0, transient=True)
    if info is not None and info.get("error"):
        if not retry_skipped:
            return _skip(path, str(info["error"]), t0, cached=True)
        with disk_errors(entry.dir):
            entry.forget()
        info = None
    missing = [m for m in spec.modalities if not entry.has(spec.modality_tag(m))]
    if info is not None and not missing:
        return {"path": str(path), "status": "cached", "clips": int(info["n"]), "frames": 0,
                "padded": int(info.get("padded", 0)), "seconds": time.perf_counter() - t0}  # fmt: skip
    padded = 0
    try:
        video = decode_video(
            path, fps=spec.fps, size=spec.size, sample_rate=spec.sample_rate,
            audio="audio" in missing, max_seconds=spec.max_seconds, window=window,
        )  # fmt: skip
        if info is not None:  # arrays exist: cut the missing modalities at the same frames
            if info.get("padded"):
                video, padded = pad_video(video, spec.frames)
            starts = _indexed_starts(info, len(video.frames), spec.frames, path)
        else:
            if spec.short == "pad":
                video, padded = pad_video(video, spec.frames)
            starts = clip_starts(
                len(video.frames), spec.frames, per_video=spec.per_video,
                sampling=spec.sampling, stride=spec.stride,
                rng=np.random.default_rng(entry.clip_seed(spec.seed)),
            )  # fmt: skip
        if not starts:
            raise DataError(
                f"{path}: too short: {len(video.frames)} frames at {spec.fps:g} fps, "
                f"a clip needs {spec.frames} (data.clip.short=skip)"
            )
    except TransientDataError as exc:
        return _skip(path, _reason(exc, path), t0, transient=True)
    except DataError as exc:
        return _remember(entry, path, _reason(exc, path), t0)
    except Exception as exc:  # an unexpected failure: report it, don't remember it
        return _skip(
            path, f"{type(exc).__name__}: {str(exc)[:200]}", t0, transient=is_transient(exc)
        )
    clips = cut_clips(video, spec.frames, starts)
    try:
        arrays = {
            name: [MODALITIES.get(name).extract(c, spec.modalities[name]) for c in clips]
            for name in missing
        }
    except DataError:  # a user-fixable parameter problem (e.g. fmax > Nyquist): stop the run
        raise
    except Exception as exc:
        reason = f"extraction failed: {type(exc).__name__}: {str(exc)[:200]}"
        return _skip(path, reason, t0, transient=is_transient(exc))
    for name, per_clip in arrays.items():
        for k, arr in enumerate(per_clip):
            if arr is not None and not np.isfinite(arr).all():
                what = "audio samples" if name == "audio" else "values"
                reason = f"non-finite {name}: NaN or Inf {what} in clip {k}"
                return _remember(entry, path, reason, t0)
    audio_track = video.audio is not None or info is not None and bool(info.get("audio_track"))
    with disk_errors(entry.dir):
        if info is None or bool(info.get("audio_track")) != audio_track:  # starts never change
            entry.write_clips({
                "source": str(path),
                "n": len(clips),
                "starts": [float(c.start) for c in clips],
                "frame_index": [int(s) for s in starts],
                "audio_track": audio_track,
                "duration": float(len(video.frames) / spec.fps),
                "padded": padded,
            })  # fmt: skip
        for name, per_clip in arrays.items():
            entry.write_modality(spec.modality_tag(name), per_clip)
    return {"path": str(path), "status": "ok", "clips": len(clips), "padded": padded,
            "frames": int(len(video.frames)), "seconds": time.perf_counter() - t0}  # fmt: skip


def _remember(entry: CacheEntry, path: Path, reason: str, t0: float) -> dict[str, Any]:
    """Skip ``path`` for a content error, remembered until the file changes."""
    with disk_errors(entry.dir):
        entry.write_clips({"error": reason, "source": str(path)})
    return _skip(path, reason, t0)


def _indexed_starts(info: Mapping[str, Any], n_frames: int, frames: int, path: Path) -> list[int]:
    """The clip starts an entry's ``clips.json`` already fixed; an error (reported, not
    remembered) if they no longer fit the decoded video."""
    starts = [int(s) for s in info.get("frame_index", [])]
    if not starts or max(starts) + frames > n_frames:
        raise RuntimeError(
            f"{path}: the cached clip index does not fit the decoded video "
            f"({n_frames} frames); delete the cache entry to re-extract"
        )
    return starts


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
    from tqdm import tqdm

    path_list = [_source(p) for p in paths]
    cache = ClipCache(cache_dir)
    cache.check_writable()
    # one writer per cache: a second elo-extract (or search) on it waits its turn
    lock = DirLock(cache.root, "elo-extract", wait=True).acquire()
    clear_stale_temps(cache.root)
    report_path = Path(report) if report is not None else cache.report_path()
    n_workers = (os.cpu_count() or 1) if workers is None else max(0, int(workers))
    n_workers = min(n_workers, max(1, len(path_list)))
    summary = ExtractSummary(report=report_path)
    run_id = time.strftime("%Y-%m-%dT%H:%M:%S")
    t0 = time.perf_counter()
    bar = tqdm(total=len(path_list), unit="video", disable=not progress, dynamic_ncols=True)

    def done(rec: Mapping[str, Any]) -> None:
        summary.add(rec)
        if rec["status"] == "skipped":
            log.debug("skip %s: %s", rec["path"], rec["reason"])
            append_jsonl(report_path, {"kind": "skip", "run": run_id, **rec})
        elapsed = time.perf_counter() - t0
        bar.set_postfix(
            clips_s=f"{summary.clips / max(elapsed, 1e-9):.1f}", skipped=summary.skipped
        )
        bar.update(1)

    try:
        todo = []
        for p in path_list:  # cached and unusable files are settled here, without a pool
            try:
                entry = cache.entry(p[0], spec, p[1])
                settled = cache.complete(entry, spec)
                if retry_skipped and settled and (entry.clips() or {}).get("error"):
                    settled = False
            except (DataError, OSError):
                settled = True
            if settled:
                done(extract_one(p[0], cache.root, spec, retry_skipped, p[1]))
            else:
                todo.append(p)
        if n_workers <= 1 or len(todo) < 4:
            with _single_threaded():
                for p in todo:
                    done(extract_one(p[0], cache.root, spec, retry_skipped, p[1]))
        else:
            _run_pool(todo, cache.root, spec, min(n_workers, len(todo)), done, retry_skipped)
    finally:
        bar.close()
        summary.seconds = time.perf_counter() - t0
        append_jsonl(
            report_path,
            {"kind": "summary", "run": run_id, "ok": summary.ok, "cached": summary.cached,
             "skipped": summary.skipped, "clips": summary.clips, "seconds": summary.seconds,
             "padded": summary.padded, "transient": summary.transient,
             "reasons": dict(summary.reasons)},
        )  # fmt: skip
        lock.release()
    return summary


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
        ctx.set_forkserver_preload(
            [
                "elo.data.extract",
                "elo.data.video",
                "modalities.rgb",
                "modalities.flow",
                "modalities.audio",
            ]
        )
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
            done(_skip(p[0], reason, time.perf_counter()))


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
