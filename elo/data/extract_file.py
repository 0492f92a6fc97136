"""One file's extraction (:func:`extract_one`, re-exported by :mod:`elo.data.extract`):
decode it, cut its clips, compute every missing modality and commit them to its cache
entry. The process pool of ``elo-extract`` runs it once per file.

The record it returns has ``status`` ok / cached / skipped (+ ``reason``). A content
error (not a video, truncated, too short, non-finite values) is remembered in the cache
entry; an I/O or resource failure is reported with ``transient: true`` and never
remembered, so the next run retries it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from elo.data.cache import CacheEntry, ClipCache, ExtractSpec, Window
from elo.data.decode import is_transient
from elo.data.video import DecodedVideo, clip_starts, cut_clips, pad_video
from elo.errors import DataError, TransientDataError
from elo.model.modality import MODALITIES, DecodedClip
from elo.rundir import disk_errors

#: a finished record, or the entry to extract with its ``clips.json`` (None: new entry)
_Opened = dict[str, Any] | tuple[CacheEntry, dict[str, Any] | None]


def skip_record(
    path: Path, reason: str, t0: float, cached: bool = False, transient: bool = False
) -> dict[str, Any]:
    """The record of a skipped file; ``cached``: a skip remembered by an earlier run."""
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
    path = Path(path)
    t0 = time.perf_counter()
    opened = _open_entry(path, ClipCache(cache_root), spec, window, retry_skipped, t0)
    if isinstance(opened, dict):
        return opened
    entry, info = opened
    missing = [m for m in spec.modalities if not entry.has(spec.modality_tag(m))]
    if info is not None and not missing:
        return _done(path, "cached", t0, int(info["n"]), 0, int(info.get("padded", 0)))
    try:
        video, starts, padded = _decode(path, spec, entry, info, "audio" in missing, window)
    except TransientDataError as exc:
        return skip_record(path, _reason(exc, path), t0, transient=True)
    except DataError as exc:
        return _remember(entry, path, _reason(exc, path), t0)
    except Exception as exc:  # an unexpected failure: report it, don't remember it
        return skip_record(
            path, f"{type(exc).__name__}: {str(exc)[:200]}", t0, transient=is_transient(exc)
        )
    clips = cut_clips(video, spec.frames, starts)
    try:
        arrays = _modalities(clips, spec, missing)
    except DataError:  # a user-fixable parameter problem (e.g. fmax > Nyquist): stop the run
        raise
    except Exception as exc:
        reason = f"extraction failed: {type(exc).__name__}: {str(exc)[:200]}"
        return skip_record(path, reason, t0, transient=is_transient(exc))
    bad = _non_finite(arrays)
    if bad is not None:
        return _remember(entry, path, bad, t0)
    _commit(entry, spec, info, video, starts, clips, arrays, padded)
    return _done(path, "ok", t0, len(clips), int(len(video.frames)), padded)


def _done(
    path: Path, status: str, t0: float, clips: int, frames: int, padded: int
) -> dict[str, Any]:
    """The record of a file whose clips are in the cache: ``ok`` (``frames`` decoded now)
    or ``cached`` (before)."""
    return {
        "path": str(path),
        "status": status,
        "clips": clips,
        "frames": frames,
        "padded": padded,
        "seconds": time.perf_counter() - t0,
    }


def _commit(
    entry: CacheEntry,
    spec: ExtractSpec,
    info: Mapping[str, Any] | None,
    video: DecodedVideo,
    starts: Sequence[int],
    clips: Sequence[DecodedClip],
    arrays: Mapping[str, Sequence[np.ndarray | None]],
    padded: int,
) -> None:
    """Write the new modality arrays of ``entry``; ``clips.json`` only for a new entry
    or a changed audio-track flag (the clip starts never change under arrays)."""
    path = entry.source
    audio_track = video.audio is not None or info is not None and bool(info.get("audio_track"))
    with disk_errors(entry.dir):
        if info is None or bool(info.get("audio_track")) != audio_track:  # starts never change
            entry.write_clips(
                {
                    "source": str(path),
                    "n": len(clips),
                    "starts": [float(c.start) for c in clips],
                    "frame_index": [int(s) for s in starts],
                    "audio_track": audio_track,
                    "duration": float(len(video.frames) / spec.fps),
                    "padded": padded,
                }
            )
        for name, per_clip in arrays.items():
            entry.write_modality(spec.modality_tag(name), per_clip)


def _open_entry(
    path: Path,
    cache: ClipCache,
    spec: ExtractSpec,
    window: Window | None,
    retry_skipped: bool,
    t0: float,
) -> _Opened:
    """The cache entry of ``path`` and its ``clips.json``; a skip record instead when
    the file is unusable, the entry unreadable, or a remembered skip not retried."""
    try:
        entry = cache.entry(path, spec, window)
        info = entry.clips()
    except DataError as exc:
        return skip_record(path, _reason(exc, path), t0)
    except OSError as exc:  # the cache entry could not be read: not the file's fault
        return skip_record(
            path, f"cannot read the cache entry ({exc.strerror})", t0, transient=True
        )
    if info is not None and info.get("error"):
        if not retry_skipped:
            return skip_record(path, str(info["error"]), t0, cached=True)
        with disk_errors(entry.dir):
            entry.forget()
        info = None
    return entry, info


def _decode(
    path: Path,
    spec: ExtractSpec,
    entry: CacheEntry,
    info: Mapping[str, Any] | None,
    audio: bool,
    window: Window | None,
) -> tuple[DecodedVideo, list[int], int]:
    """The decoded video (padded when the spec or the entry says so), its clip starts
    and the frames padded. An entry with arrays keeps its starts (every modality is cut
    at the same frames); a new entry draws them. :class:`DataError` if no clip fits."""
    # looked up per call, not bound at import: tests replace elo.data.video.decode_video
    from elo.data.video import decode_video

    padded = 0
    video = decode_video(
        path,
        fps=spec.fps,
        size=spec.size,
        sample_rate=spec.sample_rate,
        audio=audio,
        max_seconds=spec.max_seconds,
        window=window,
    )
    if info is not None:  # arrays exist: cut the missing modalities at the same frames
        if info.get("padded"):
            video, padded = pad_video(video, spec.frames)
        starts = _indexed_starts(info, len(video.frames), spec.frames, path)
    else:
        if spec.short == "pad":
            video, padded = pad_video(video, spec.frames)
        starts = clip_starts(
            len(video.frames),
            spec.frames,
            per_video=spec.per_video,
            sampling=spec.sampling,
            stride=spec.stride,
            rng=np.random.default_rng(entry.clip_seed(spec.seed)),
        )
    if not starts:
        raise DataError(
            f"{path}: too short: {len(video.frames)} frames at {spec.fps:g} fps, "
            f"a clip needs {spec.frames} (data.clip.short=skip)"
        )
    return video, starts, padded


def _modalities(
    clips: Sequence[DecodedClip], spec: ExtractSpec, names: Sequence[str]
) -> dict[str, list[np.ndarray | None]]:
    """Per modality of ``names``, its array for every clip (``None``: absent)."""
    return {
        name: [MODALITIES.get(name).extract(c, spec.modalities[name]) for c in clips]
        for name in names
    }


def _non_finite(arrays: Mapping[str, Sequence[np.ndarray | None]]) -> str | None:
    """The skip reason for the first clip with a NaN or Inf value, else ``None``."""
    for name, per_clip in arrays.items():
        for k, arr in enumerate(per_clip):
            if arr is not None and not np.isfinite(arr).all():
                what = "audio samples" if name == "audio" else "values"
                return f"non-finite {name}: NaN or Inf {what} in clip {k}"
    return None


def _remember(entry: CacheEntry, path: Path, reason: str, t0: float) -> dict[str, Any]:
    """Skip ``path`` for a content error, remembered until the file changes."""
    with disk_errors(entry.dir):
        entry.write_clips({"error": reason, "source": str(path)})
    return skip_record(path, reason, t0)


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
