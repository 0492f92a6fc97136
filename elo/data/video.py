"""Video decoding with PyAV: frames resampled to a target fps, resized and centre-cropped,
and audio resampled to mono at a target rate, on one shared timeline.

Clips are windows of ``T`` frames of the decoded video (:func:`clip_starts`,
:func:`cut_clips`), each a :class:`~elo.model.modality.DecodedClip` whose audio covers exactly
the clip's time window. The PyAV machinery (container, demux loop, frame picking, audio
post-processing such as undeclared AAC priming, docs/datasets.md) is in
:mod:`elo.data.decode`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from elo.data.decode import (
    MAX_GAP_SECONDS,
    TRANSIENT_ERRNOS,
    Demuxer,
    is_transient,
    open_container,
)
from elo.errors import DataError
from elo.model.modality import DecodedClip

__all__ = [
    "MAX_GAP_SECONDS",
    "TRANSIENT_ERRNOS",
    "VIDEO_SUFFIXES",
    "DecodedVideo",
    "clip_starts",
    "cut_clips",
    "decode_video",
    "is_transient",
    "pad_video",
]

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ogv", ".flv", ".wmv"}
)


@dataclass
class DecodedVideo:
    """A whole decoded file: frames at ``fps`` and the audio track on the same clock."""

    frames: np.ndarray  # N,H,W,3 uint8 RGB at ``fps``, resized + cropped
    times: np.ndarray  # N float64 seconds (container timeline) of each output frame
    fps: float
    audio: np.ndarray | None  # M float32 mono in [-1, 1]; None = no audio track
    audio_t0: float  # seconds (container timeline) of audio[0]
    sample_rate: int
    source: Path


def decode_video(
    path: str | Path,
    *,
    fps: float,
    size: int,
    sample_rate: int = 16000,
    audio: bool = True,
    aac_priming: int = 1024,
    max_seconds: float | None = None,
    window: tuple[float, float] | None = None,
) -> DecodedVideo:
    """Decode ``path`` once: video frames picked at ``fps`` (nearest source frame),
    resized (shorter side = ``size``) and centre-cropped to ``size`` x ``size``; audio
    resampled to ``sample_rate`` mono.

    Memory is bounded: decoding stops after ``max_seconds`` of video (``None``: the
    whole file), and a timestamp gap is bridged by at most :data:`MAX_GAP_SECONDS` of
    repeated frames (a warning names the file), then the timeline jumps.

    ``window`` = (start, end) seconds keeps only the frames of that span of an
    untrimmed video (Kinetics rows, docs/datasets.md); frames before it are decoded
    and dropped, never stored, and ``max_seconds`` then counts from ``start``.

    Raises :class:`DataError` (one line, naming the file) for anything undecodable, and
    :class:`TransientDataError` for an I/O or resource failure (EIO, EACCES, EMFILE,
    ENOMEM, ...) that says nothing about the file's content.
    """
    path = Path(path)
    with open_container(path) as container:
        demux = Demuxer(container, path, fps=fps, size=size, sample_rate=sample_rate, audio=audio)
        stop = max_seconds
        if window is not None:
            demux.picker.start = float(window[0])
            stop = float(window[1])
            if max_seconds is not None:
                stop = min(stop, float(window[0]) + max_seconds)
        demux.run(stop)
        demux.finish()
        picker = demux.picker
        if window is not None and stop is not None:
            picker.trim_after(stop)
        if not picker.frames:
            if window is not None:
                raise DataError(
                    f"{path}: no video frames in its window {window[0]:g}-{window[1]:g} s "
                    f"(the file ends at {picker.last_time:.1f} s); check time_start/time_end"
                )
            raise DataError(f"{path}: no decodable video frames ({demux.errors} bad packets)")
        samples = demux.samples(aac_priming)
        if demux.errors:
            log.debug("%s: %d undecodable packets skipped", path, demux.errors)
    return DecodedVideo(
        frames=np.stack(picker.frames),
        times=np.asarray(picker.times, dtype=np.float64),
        fps=float(fps),
        audio=samples,
        audio_t0=float(demux.audio_t0 or 0.0),
        sample_rate=sample_rate,
        source=path,
    )


def pad_video(video: DecodedVideo, frames: int) -> tuple[DecodedVideo, int]:
    """``video`` lengthened to ``frames`` frames by repeating its last frame (times
    continue at the frame rate); returns it and the number of frames added."""
    n = len(video.frames)
    if n >= frames:
        return video, 0
    extra = frames - n
    last_t = float(video.times[-1]) if n else 0.0
    times = np.concatenate([video.times, last_t + np.arange(1, extra + 1) / video.fps])
    padded = np.concatenate([video.frames, np.repeat(video.frames[-1:], extra, axis=0)])
    return dataclasses.replace(video, frames=padded, times=times), extra


def clip_starts(
    n_frames: int,
    frames: int,
    *,
    per_video: int = 1,
    sampling: str = "uniform",
    stride: int = 0,
    rng: np.random.Generator | None = None,
) -> list[int]:
    """Start indices of clips of ``frames`` frames in a video of ``n_frames`` frames.

    ``uniform``: ``per_video`` windows evenly spread (centred for one);
    ``random``: ``per_video`` distinct random starts (needs ``rng``);
    ``sliding``: every ``stride`` frames (``per_video`` > 0 caps the count).
    A video shorter than one clip has no clips.
    """
    last = n_frames - frames
    if last < 0:
        return []
    if sampling == "uniform":
        k = min(per_video, last + 1)
        return sorted({int(round((i + 0.5) * (last + 1) / k - 0.5)) for i in range(k)})
    if sampling == "random":
        if rng is None:
            raise ValueError("random clip sampling needs a seeded generator")
        k = min(per_video, last + 1)
        return sorted(int(s) for s in rng.choice(last + 1, size=k, replace=False))
    if sampling == "sliding":
        starts = list(range(0, last + 1, max(1, stride or frames)))
        return starts[:per_video] if per_video > 0 else starts
    raise DataError(f"unknown clip sampling {sampling!r}; use uniform, random or sliding")


def cut_clips(video: DecodedVideo, frames: int, starts: Sequence[int]) -> list[DecodedClip]:
    """The clips at ``starts``; each clip's audio is exactly its time window (zero
    padded where the track is shorter; ``None`` when the track covers < half of it)."""
    out = []
    n = int(round(frames / video.fps * video.sample_rate))
    for s in starts:
        t0 = float(video.times[s])
        clip_audio = None
        if video.audio is not None:
            i0 = int(round((t0 - video.audio_t0) * video.sample_rate))
            lo, hi = max(i0, 0), min(i0 + n, len(video.audio))
            if hi - lo >= n / 2:
                clip_audio = np.zeros(n, dtype=np.float32)
                clip_audio[lo - i0 : hi - i0] = video.audio[lo:hi]
        out.append(
            DecodedClip(
                frames=video.frames[s : s + frames],
                fps=video.fps,
                audio=clip_audio,
                sample_rate=video.sample_rate,
                start=t0,
                source=video.source,
            )
        )
    return out
