"""The PyAV machinery behind :func:`elo.data.video.decode_video`: opening a container
(:func:`open_container`), the demux loop (:class:`Demuxer`: video frames to a
:class:`FramePicker` on the target clock, audio resampled to mono) and the audio
post-processing (undeclared AAC priming dropped, docs/datasets.md).

Failures are one line naming the file: :class:`DataError` for bad content,
:class:`TransientDataError` for an I/O or resource failure (:func:`is_transient`).
"""

from __future__ import annotations

import errno
import logging
from pathlib import Path
from typing import Any, cast

import numpy as np

from elo.errors import DataError, TransientDataError

#: decoding reports under the public module's name (``elo.data.video``)
log = logging.getLogger("elo.data.video")

#: container names (FFmpeg demuxer) that carry undeclared AAC priming
_MP4_FAMILY = ("mov", "mp4", "m4a", "3gp", "3g2", "mj2")

#: errno values that describe the machine (I/O, permissions, resources), not the file's
#: content: such failures are reported but never remembered in the cache
TRANSIENT_ERRNOS = frozenset(
    {
        errno.EIO,
        errno.EACCES,
        errno.EPERM,
        errno.EMFILE,
        errno.ENFILE,
        errno.ENOMEM,
        errno.EAGAIN,
        errno.EINTR,
        errno.ENOSPC,
        errno.ETIMEDOUT,
        errno.ESTALE,
        errno.EBUSY,
        errno.ENOLCK,
        errno.ENODEV,
        errno.ENXIO,
        errno.ENOBUFS,
        errno.EDQUOT,
    }
)

#: longest timestamp gap bridged by repeating the last frame (seconds)
MAX_GAP_SECONDS = 1.0


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is an I/O or resource failure rather than bad content."""
    if isinstance(exc, MemoryError):
        return True
    return isinstance(exc, OSError) and getattr(exc, "errno", None) in TRANSIENT_ERRNOS


def short_error(exc: BaseException) -> str:
    """The first line of ``exc`` (at most 200 characters), or its type's name."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def resize_dims(w: int, h: int, size: int) -> tuple[int, int]:
    """Scale so the shorter side is ``size`` (then we centre-crop to size x size)."""
    if w <= h:
        return size, max(size, int(round(h * size / w)))
    return max(size, int(round(w * size / h))), size


def open_container(path: Path) -> Any:
    """``path`` opened with PyAV for reading (FFmpeg's own log silenced)."""
    import av

    av.logging.set_level(av.logging.FATAL)
    try:
        return av.open(str(path), "r")
    except (av.FFmpegError, OSError, ValueError) as exc:
        if is_transient(exc):
            raise TransientDataError(f"{path}: cannot read ({short_error(exc)})") from None
        raise DataError(f"{path}: cannot open as a video ({short_error(exc)})") from None
    except MemoryError:
        raise TransientDataError(f"{path}: out of memory while opening") from None


class FramePicker:
    """Chooses, for each target time ``t0 + k/fps``, the nearest decoded source frame."""

    def __init__(self, *, fps: float, src_fps: float, dims: tuple[int, int], size: int) -> None:
        self.step = 1.0 / fps
        self.half_src = 0.5 / max(src_fps, 1e-3)
        self.dims = dims
        self.size = size
        self.interp = "BILINEAR"  # set to AREA by the Demuxer when shrinking
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
                    self.source,
                    t - self.prev_t,
                    MAX_GAP_SECONDS,
                )
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


class Demuxer:
    """One pass over an open container: the first video stream's frames go to a
    :class:`FramePicker` (resized so the shorter side is ``size``, centre-cropped), the
    first audio stream (when ``audio``) through a resampler to ``sample_rate`` mono."""

    def __init__(
        self, container: Any, path: Path, *, fps: float, size: int, sample_rate: int, audio: bool
    ) -> None:
        import av

        self.container, self.path, self.sample_rate = container, path, sample_rate
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
        rw, rh = resize_dims(w, h, size)
        self.video = vs
        self.audio = container.streams.audio[0] if (audio and container.streams.audio) else None
        self.picker = FramePicker(
            fps=fps, src_fps=float(rate) if rate else fps, dims=(rw, rh), size=size
        )
        self.picker.source = path
        if rw < w:
            self.picker.interp = "AREA"
        self.resampler = (
            av.AudioResampler(format="flt", layout="mono", rate=sample_rate) if self.audio else None
        )
        self.chunks: list[np.ndarray] = []
        self.audio_t0: float | None = None  # container time of the first audio sample
        self.first_audio_pts: int | None = None
        self.errors = 0  # undecodable packets skipped

    def run(self, stop: float | None) -> None:
        """Demux until the end of the file or the first frame after ``stop`` seconds; a
        container failure mid-file ends the pass (what was decoded is kept)."""
        import av

        streams = [self.video] if self.audio is None else [self.video, self.audio]
        try:
            for packet in self.container.demux(*streams):
                self._packet(packet)
                if stop is not None and self.picker.last_time > stop:
                    break
        except av.FFmpegError as exc:  # container-level failure mid-file
            self.errors += 1
            log.debug("%s: demux stopped early: %s", self.path, short_error(exc))
        except MemoryError:
            raise TransientDataError(f"{self.path}: out of memory while decoding") from None
        except (ValueError, OSError) as exc:
            if is_transient(exc):
                raise TransientDataError(f"{self.path}: read failed ({short_error(exc)})") from None
            raise DataError(f"{self.path}: decoding failed ({short_error(exc)})") from None

    def _packet(self, packet: Any) -> None:
        import av

        if packet.stream is self.audio and self.first_audio_pts is None and packet.pts is not None:
            self.first_audio_pts = packet.pts
        try:
            frames = packet.decode()
        except av.FFmpegError:
            self.errors += 1
            return
        for frame in cast(list[Any], frames):
            if packet.stream is self.video:
                self.picker.push(frame)
            elif self.resampler is not None:
                if self.audio_t0 is None and frame.time is not None:
                    self.audio_t0 = float(frame.time)
                self._resampled(frame)

    def _resampled(self, frame: Any) -> None:
        assert self.resampler is not None
        for rf in self.resampler.resample(frame):
            self.chunks.append(rf.to_ndarray().reshape(-1))

    def finish(self) -> None:
        """Emit the frames still due and flush the resampler."""
        import av

        self.picker.finish()
        if self.resampler is not None:
            try:
                self._resampled(None)
            except av.FFmpegError:
                self.errors += 1

    def samples(self, aac_priming: int) -> np.ndarray | None:
        """The audio track (float32 mono), ``None`` without one. AAC in MP4/MOV whose
        first packet starts at pts >= 0 loses ``aac_priming`` samples (at the source
        rate): the undeclared encoder priming (docs/datasets.md)."""
        if self.audio is None or not self.chunks:
            return None
        samples = np.concatenate(self.chunks).astype(np.float32, copy=False)
        fmt = self.container.format.name.split(",")
        declared = self.first_audio_pts is not None and self.first_audio_pts < 0
        if self.audio.codec_context.name == "aac" and not declared and set(fmt) & set(_MP4_FAMILY):
            rate = self.audio.codec_context.sample_rate or self.sample_rate
            skip = int(round(aac_priming * self.sample_rate / rate))
            samples = samples[skip:]
        return samples
