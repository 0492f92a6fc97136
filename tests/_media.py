"""Real media files for tests, written with PyAV (no mocked decoding).

>>> frames = moving_square(16, 48, 64)                       # T,H,W,3 uint8
>>> write_video(tmp / "a.mp4", frames, fps=8.0, audio=tone(2.0))  # doctest: +SKIP

Containers are chosen by suffix. Video is encoded all-intra (``gop_size=1``) by
default so that a codec's sharpness decay after a keyframe cannot act as an arrow of
time (docs/datasets.md, "Decoding notes").
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

#: suffix -> (video codec, audio codec, pixel format)
CODECS: dict[str, tuple[str, str, str]] = {
    ".mp4": ("libx264", "aac", "yuv420p"),
    ".m4v": ("libx264", "aac", "yuv420p"),
    ".mov": ("libx264", "aac", "yuv420p"),
    ".mkv": ("libx264", "aac", "yuv420p"),
    ".avi": ("mpeg4", "pcm_s16le", "yuv420p"),
    ".webm": ("libvpx", "libopus", "yuv420p"),
}


def _fps_fraction(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
    *,
    gop_size: int = 1,
    crf: int = 18,
    audio_pts: bool = True,
) -> Path:
    """Write ``frames`` (T,H,W,3 uint8 RGB) and optional mono ``audio`` (N float in
    [-1, 1]) to ``path``; the container and codecs follow the suffix (see CODECS).

    Odd sizes are padded to even (yuv420p needs even dimensions) by edge replication.
    Opus (webm) only takes 48 kHz, so audio is resampled by the encoder there.
    ``audio_pts=False`` feeds audio frames without timestamps, the naive way that leaves
    AAC priming undeclared in MP4 (decoders then return 1024 extra leading samples).
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    vcodec, acodec, pix_fmt = CODECS[path.suffix.lower()]
    frames = np.asarray(frames, dtype=np.uint8)
    t, h, w, _ = frames.shape
    ph, pw = h + h % 2, w + w % 2
    if (ph, pw) != (h, w):
        frames = np.pad(frames, ((0, 0), (0, ph - h), (0, pw - w), (0, 0)), mode="edge")
    with av.open(str(path), "w") as out:
        vs = out.add_stream(vcodec, rate=_fps_fraction(fps))
        vs.width, vs.height, vs.pix_fmt = pw, ph, pix_fmt
        vs.codec_context.gop_size = gop_size
        if vcodec == "libx264":
            vs.options = {"crf": str(crf), "preset": "ultrafast"}
        elif vcodec == "libvpx":
            vs.options = {"crf": "10", "b:v": "1M", "deadline": "realtime"}
        else:
            vs.codec_context.bit_rate = 2_000_000
        astream = None
        if audio is not None:
            rate = 48000 if acodec == "libopus" else sample_rate
            astream = out.add_stream(acodec, rate=rate)
            astream.layout = "mono"
        for frame in frames:
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            for packet in vs.encode(vf):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        if astream is not None and audio is not None:
            _encode_audio(out, astream, np.asarray(audio, dtype=np.float32), sample_rate, audio_pts)
    return path


def _encode_audio(
    out: object, stream: object, audio: np.ndarray, sample_rate: int, with_pts: bool = True
) -> None:
    import av

    samples = np.clip(audio, -1.0, 1.0).astype(np.float32)[None, :]  # 1,N
    frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
    frame.sample_rate = sample_rate
    frame.pts = 0
    frame.time_base = Fraction(1, sample_rate)
    ctx = stream.codec_context  # type: ignore[attr-defined]
    resampler = av.AudioResampler(format=ctx.format.name, layout="mono", rate=ctx.sample_rate)
    chunk = ctx.frame_size or 1024
    pending = [f for f in resampler.resample(frame)] + list(resampler.resample(None))
    data = np.concatenate([f.to_ndarray().reshape(-1) for f in pending]) if pending else None
    if data is None:
        return
    fmt = ctx.format.name
    pts = 0
    for i in range(0, len(data), chunk):
        part = data[i : i + chunk]
        af = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(part[None, :]), format=fmt, layout="mono"
        )
        af.sample_rate = ctx.sample_rate
        if with_pts:
            af.pts = pts
            af.time_base = Fraction(1, ctx.sample_rate)
        pts += len(part)
        for packet in stream.encode(af):  # type: ignore[attr-defined]
            out.mux(packet)  # type: ignore[attr-defined]
    for packet in stream.encode(None):  # type: ignore[attr-defined]
        out.mux(packet)  # type: ignore[attr-defined]


def write_audio_only(path: str | Path, audio: np.ndarray, sample_rate: int = 16000) -> Path:
    """An audio-only file (e.g. ``.mp4`` or ``.m4a`` holding only AAC)."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=sample_rate)
        stream.layout = "mono"
        _encode_audio(out, stream, np.asarray(audio, dtype=np.float32), sample_rate)
    return path


# -- content ----------------------------------------------------------------------------
def moving_square(
    t: int, h: int, w: int, *, speed: tuple[int, int] = (3, 2), side: int = 10, seed: int = 0
) -> np.ndarray:
    """T,H,W,3 uint8: a bright square moving ``speed`` (dx, dy) pixels per frame over a
    smooth random background (wrapping at the edges)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    bg = 60 + 40 * np.sin(xx / 5.0 + rng.uniform(0, 6)) * np.cos(yy / 7.0 + rng.uniform(0, 6))
    base = np.repeat(bg[..., None], 3, axis=2)
    out = np.empty((t, h, w, 3), dtype=np.uint8)
    x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
    for i in range(t):
        img = base.copy()
        ys = (y0 + speed[1] * i + np.arange(side)) % h
        xs = (x0 + speed[0] * i + np.arange(side)) % w
        img[np.ix_(ys, xs)] = (230, 200, 40)
        out[i] = np.clip(img, 0, 255)
    return out


def frame_index_pattern(t: int, h: int, w: int) -> np.ndarray:
    """T,H,W,3 uint8 frames whose mean brightness encodes the frame index
    (``10 + 12 * i``, capped), to check which source frames a decoder picked."""
    levels = np.minimum(10 + 12 * np.arange(t), 250).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (t, h, w, 3)).copy()


def tone(
    seconds: float, freq: float = 440.0, sample_rate: int = 16000, amp: float = 0.5
) -> np.ndarray:
    n = int(round(seconds * sample_rate))
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / sample_rate)).astype(np.float32)


def click_track(
    seconds: float, click_at: float, sample_rate: int = 16000, width: float = 0.004
) -> np.ndarray:
    """Silence with one short loud click (a 1 kHz burst) starting at ``click_at`` s."""
    n = int(round(seconds * sample_rate))
    out = np.zeros(n, dtype=np.float32)
    i0 = int(round(click_at * sample_rate))
    k = int(round(width * sample_rate))
    out[i0 : i0 + k] = 0.9 * np.sin(2 * np.pi * 1000 * np.arange(min(k, n - i0)) / sample_rate)
    return out


def onset_time(audio: np.ndarray, sample_rate: int, threshold: float = 0.2) -> float:
    """Seconds of the first sample whose magnitude exceeds ``threshold``."""
    idx = np.flatnonzero(np.abs(audio) > threshold)
    return float(idx[0]) / sample_rate if idx.size else float("nan")
