"""Video decoding with PyAV: frames resampled to a target fps, resized and centre-cropped,
and audio resampled to mono at a target rate, on one shared timeline.

Clips are windows of ``T`` frames of the decoded video (:func:`clip_starts`,
:func:`cut_clips`), each a :class:`~elo.model.modality.DecodedClip` whose audio covers exactly
the clip's time window.

AAC priming: an AAC encoder emits 1024 "priming" samples before the first real sample.
Well-formed MP4s declare them (a first packet with negative pts / an edit list) and
FFmpeg drops them; MP4s written without timestamps do not, and PyAV then returns the
priming as real audio, delaying the track by 64 ms at 16 kHz (ENVIRONMENT.md). For
AAC in MP4/MOV whose first packet starts at pts >= 0 we drop ``aac_priming`` samples.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from elo.errors import DataError, TransientDataError
from elo.model.modality import DecodedClip

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ogv", ".flv", ".wmv"}
)
#: container names (FFmpeg demuxer) that carry undeclared AAC priming
_MP4_FAMILY = ("mov", "mp4", "m4a", "3gp", "3g2", "mj2")


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


def _resize_dims(w: int, h: int, size: int) -> tuple[int, int]:
    """Scale so the shorter side is ``size`` (then we centre-crop to size x size)."""
    if w <= h:
        return size, max(size, int(round(h * size / w)))
    return max(size, int(round(w * size / h))), size


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
    import av

    path = Path(path)
    av.logging.set_level(av.logging.FATAL)
    try:
        container = av.open(str(path), "r")
    except (av.FFmpegError, OSError, ValueError) as exc:
        if is_transient(exc):
            raise TransientDataError(f"{path}: cannot read ({_short(exc)})") from None
        raise DataError(f"{path}: cannot open as a video ({_short(exc)})") from None
    except MemoryError:
        raise TransientDataError(f"{path}: out of memory while opening") from None
    with container:
        if not container.streams.video:
            kind = "audio-only file" if container.streams.audio else "no video stream"
            raise DataError(f"{path}: {kind}; expected a video")
        vs = container.streams.video[0]
        vs.thread_type = "SLICE"
        vs.codec_context.thread_count = 1
        w, h = vs.codec_context.width, vs.codec_context.height
        if not w or not h:
            raise DataError(f"{path}: video stream has no frame size")
        rate = vs.average_rate or vs.guessed_rate or vs.base_rate
        src_fps = float(rate) if rate else fps
        rw, rh = _resize_dims(w, h, size)
        astream = container.streams.audio[0] if (audio and container.streams.audio) else None
        streams = [vs] if astream is None else [vs, astream]
        picker = _FramePicker(fps=fps, src_fps=src_fps, dims=(rw, rh), size=size)
        picker.source = path
        stop = max_seconds
        if window is not None:
            picker.start = float(window[0])
            stop = float(window[1])
            if max_seconds is not None:
                stop = min(stop, float(window[0]) + max_seconds)
        if rw < w:
            picker.interp = "AREA"
        resampler = (
            av.AudioResampler(format="flt", layout="mono", rate=sample_rate) if astream else None
        )
        chunks: list[np.ndarray] = []
        audio_t0: float | None = None
        first_audio_pts: int | None = None
        errors = 0
        try:
            for packet in container.demux(*streams):
                if packet.stream is astream and first_audio_pts is None and packet.pts is not None:
                    first_audio_pts = packet.pts
                try:
                    frames = packet.decode()
                except av.FFmpegError:
                    errors += 1
                    continue
                for frame in cast(list[Any], frames):
                    if packet.stream is vs:
                        picker.push(frame)
                    elif resampler is not None:
                        if audio_t0 is None and frame.time is not None:
                            audio_t0 = float(frame.time)
                        for rf in resampler.resample(frame):
                            chunks.append(rf.to_ndarray().reshape(-1))
                if stop is not None and picker.last_time > stop:
                    break
        except av.FFmpegError as exc:  # container-level failure mid-file
            errors += 1
            log.debug("%s: demux stopped early: %s", path, _short(exc))
        except MemoryError:
            raise TransientDataError(f"{path}: out of memory while decoding") from None
        except (ValueError, OSError) as exc:
            if is_transient(exc):
                raise TransientDataError(f"{path}: read failed ({_short(exc)})") from None
            raise DataError(f"{path}: decoding failed ({_short(exc)})") from None
        picker.finish()
        if resampler is not None:
            try:
                for rf in resampler.resample(None):
                    chunks.append(rf.to_ndarray().reshape(-1))
            except av.FFmpegError:
                errors += 1
        if window is not None and stop is not None:
            picker.trim_after(stop)
        if not picker.frames:
            if window is not None:
                raise DataError(
                    f"{path}: no video frames in its window {window[0]:g}-{window[1]:g} s "
                    f"(the file ends at {picker.last_time:.1f} s); check time_start/time_end"
                )
            raise DataError(f"{path}: no decodable video frames ({errors} bad packets)")
        samples: np.ndarray | None = None
        if astream is not None and chunks:
            samples = np.concatenate(chunks).astype(np.float32, copy=False)
            fmt = container.format.name.split(",")
            declared = first_audio_pts is not None and first_audio_pts < 0
            if astream.codec_context.name == "aac" and not declared and set(fmt) & set(_MP4_FAMILY):
                skip = int(
                    round(
                        aac_priming
                        * sample_rate
                        / (astream.codec_context.sample_rate or sample_rate)
                    )
                )
                samples = samples[skip:]
        if errors:
            log.debug("%s: %d undecodable packets skipped", path, errors)
    return DecodedVideo(
        frames=np.stack(picker.frames),
        times=np.asarray(picker.times, dtype=np.float64),
        fps=float(fps),
        audio=samples,
        audio_t0=float(audio_t0 or 0.0),
        sample_rate=sample_rate,
        source=path,
    )


#: errno values that describe the machine (I/O, permissions, resources), not the file's
#: content: such failures are reported but never remembered in the cache
TRANSIENT_ERRNOS = frozenset(
    {
        errno.EIO, errno.EACCES, errno.EPERM, errno.EMFILE, errno.ENFILE, errno.ENOMEM,
        errno.EAGAIN, errno.EINTR, errno.ENOSPC, errno.ETIMEDOUT, errno.ESTALE, errno.EBUSY,
        errno.ENOLCK, errno.ENODEV, errno.ENXIO, errno.ENOBUFS, errno.EDQUOT,
    }
)  # fmt: skip

#: longest timestamp gap bridged by repeating the last frame (seconds)
MAX_GAP_SECONDS = 1.0


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is an I/O or resource failure rather than bad content."""
    if isinstance(exc, MemoryError):
        return True
    return isinstance(exc, OSError) and getattr(exc, "errno", None) in TRANSIENT_ERRNOS


class _FramePicker:
    """Chooses, for each target time ``t0 + k/fps``, the nearest decoded source frame."""

    def __init__(self, *, fps: float, src_fps: float, dims: tuple[int, int], size: int) -> None:
        self.step = 1.0 / fps
        self.half_src = 0.5 / max(src_fps, 1e-3)
        self.dims = dims
        self.size = size
        self.interp = "BILINEAR"  # set to AREA by decode_video when shrinking
        self.frames: list[np.ndarray] = []
        self.times: list[float] = []
        self.next_t: float | None = None
        self.prev: object | None = None
        self.prev_t = -np.inf
        self.last_time = 0.0
        self.max_fill = max(1, int(round(MAX_GAP_SECONDS / self.step)))
        self.source: Path | None = None
        self.gaps = 0  # timestamp gaps longer than MAX_GAP_SECONDS (not filled)
        self.start: float | None = None  # frames before it are dropped (decode_video window)

    def _convert(self, frame: object) -> np.ndarray:
        rw, rh = self.dims
        # threads=1: the default (auto) sets up a thread pool per call, ~200x slower here
        img = frame.reformat(  # type: ignore[attr-defined]
            width=rw, height=rh, format="rgb24", interpolation=self.interp, threads=1
        ).to_ndarray()
        y0, x0 = (rh - self.size) // 2, (rw - self.size) // 2
        return np.ascontiguousarray(img[y0 : y0 + self.size, x0 : x0 + self.size])  # H,W,3

    def _emit(self, frame: object, t: float) -> None:
        self.frames.append(self._convert(frame))
        self.times.append(t)

    def push(self, frame: object) -> None:
        t = getattr(frame, "time", None)
        t = float(t) if t is not None else self.prev_t + 2 * self.half_src
        if t <= self.prev_t:  # out-of-order or duplicate timestamp: ignore
            return
        self.last_time = t
        if self.start is not None and t < self.start - self.half_src - 1e-6:
            return  # before the window: decoded, never stored
        if self.next_t is None:
            self.next_t = t
        eps = 1e-6
        if t - self.next_t > MAX_GAP_SECONDS + eps and self.prev is not None:
            # a long gap: hold the last frame for MAX_GAP_SECONDS, then jump to ``t``
            for _ in range(self.max_fill):
                self._emit(self.prev, self.next_t)
                self.next_t += self.step
            if not self.gaps:
                log.warning(
                    "%s: %.1f s timestamp gap; held the last frame %.1f s and skipped the rest",
                    self.source, t - self.prev_t, MAX_GAP_SECONDS,
                )  # fmt: skip
            self.gaps += 1
            self.next_t = t
        while self.next_t <= t + eps:
            # target lies between prev and this frame: take the nearer one
            use_prev = (
                self.prev is not None and (self.next_t - self.prev_t) < (t - self.next_t) - eps
            )
            self._emit(self.prev if use_prev else frame, self.next_t)
            self.next_t += self.step
        self.prev, self.prev_t = frame, t

    def trim_after(self, end: float) -> None:
        """Drop the frames picked for times after ``end`` (a window's last second)."""
        keep = sum(1 for t in self.times if t <= end + 1e-6)
        del self.frames[keep:], self.times[keep:]

    def finish(self) -> None:
        if self.prev is None or self.next_t is None:
            return
        while self.next_t <= self.prev_t + self.half_src + 1e-6:
            self._emit(self.prev, self.next_t)
            self.next_t += self.step


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


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
