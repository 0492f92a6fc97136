"""Extraction hardening (docs/reliability.md): only content errors are remembered,
``--retry-skipped``, non-finite audio is skipped with a reason, decoding is bounded
(``data.max_seconds``, capped gap filling) and short videos are padded by default."""

from __future__ import annotations

import json
import logging
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from _media import moving_square, tone, write_video

from elo.cli import extract_main
from elo.config import load_config
from elo.data.cache import ClipCache, ExtractSpec, spec_from_config
from elo.data.extract import extract_one, extract_paths
from elo.data.video import MAX_GAP_SECONDS, decode_video
from elo.rundir import read_jsonl


def _spec(*over: str, mods: tuple[str, ...] = ("rgb", "audio")) -> ExtractSpec:
    cfg = load_config(
        "demo", ["data.clip.size=32", "data.clip.sampling=uniform", "data.clip.frames=8", *over]
    )
    cfg["data"]["clip"].update(extra_frames=0, extra_pixels=0)  # exactly 8 frames here
    return spec_from_config(cfg, mods)


def _write_timed(path: Path, times: list[float], size: int = 32) -> Path:
    """A video whose frames carry the given timestamps (seconds), e.g. with a gap."""
    import av

    frames = moving_square(len(times), size, size, seed=1)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("mpeg4", rate=8)
        vs.width = vs.height = size
        vs.pix_fmt = "yuv420p"
        vs.codec_context.time_base = Fraction(1, 1000)
        for t, img in zip(times, frames, strict=True):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts, vf.time_base = int(round(t * 1000)), Fraction(1, 1000)
            for packet in vs.encode(vf):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
    return path


def _write_float_pcm(path: Path, audio: np.ndarray, seconds: float = 2.0) -> Path:
    """MKV with H.264 video and 32-bit float PCM audio (NaN survives the codec)."""
    import av

    n = int(seconds * 8)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=8)
        vs.width = vs.height = 32
        vs.pix_fmt = "yuv420p"
        a = out.add_stream("pcm_f32le", rate=16000)
        a.layout = "mono"
        for img in moving_square(n, 32, 32, seed=2):
            for packet in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        for i in range(0, len(audio), 1024):
            part = np.ascontiguousarray(audio[None, i : i + 1024], dtype=np.float32)
            af = av.AudioFrame.from_ndarray(part, format="flt", layout="mono")
            af.sample_rate, af.pts, af.time_base = 16000, i, Fraction(1, 16000)
            for packet in a.encode(af):
                out.mux(packet)
        for packet in a.encode(None):
            out.mux(packet)
    return path


def test_resource_error_is_not_remembered(tmp_path: Path) -> None:
    """With every file descriptor in use (EMFILE), the file is skipped as transient
    and not remembered; once descriptors are free the same file extracts. The old
    code cached 'cannot open as a video' for good."""
    import av  # noqa: F401  (imported before the descriptors run out)

    video = write_video(tmp_path / "v.mp4", moving_square(16, 32, 32), 8.0, tone(2.0))
    spec, cache = _spec(), tmp_path / "cache"
    ClipCache(cache).check_writable()
    held = []
    try:
        while True:
            held.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass
    try:
        rec = extract_one(video, cache, spec)
    finally:
        for fd in held:
            os.close(fd)
    assert rec["status"] == "skipped" and rec["transient"] is True, rec
    assert "Too many open files" in rec["reason"]
    entry = ClipCache(cache).entry(video, spec)
    assert entry.clips() is None  # nothing remembered
    again = extract_one(video, cache, spec)
    assert again["status"] == "ok" and again["clips"] == 1


def test_retry_skipped_reopens_remembered_failures(tmp_path: Path) -> None:
    """A skip remembered by an earlier run (here: an I/O error written into the cache
    entry by hand; extraction itself remembers only content errors) is retried by
    ``elo-extract --retry-skipped`` and then extracted."""
    videos = tmp_path / "videos"
    video = write_video(videos / "v.mp4", moving_square(16, 32, 32), 8.0, tone(2.0))
    cache = tmp_path / "cache"
    spec = _spec()
    entry = ClipCache(cache).entry(video, spec)
    entry.write_clips({"error": "cannot open as a video (Input/output error)", "source": "x"})
    s = extract_paths([video], cache, spec, workers=0, progress=False)
    assert (s.ok, s.skipped) == (0, 1) and s.records[0]["remembered"] is True
    s = extract_paths([video], cache, spec, workers=0, progress=False, retry_skipped=True)
    assert (s.ok, s.skipped) == (1, 0)
    assert entry.clips()["n"] == 1  # type: ignore[index]
    # the command-line flag, on a fresh remembered failure
    entry.forget()
    entry.write_clips({"error": "cannot open as a video (Input/output error)", "source": "x"})
    argv = [str(videos), "--cache", str(cache), "--workers", "0", "--no-progress"]
    argv += ["--modalities", "rgb,audio", "--retry-skipped"]
    argv += ["data.clip.size=32", "data.clip.sampling=uniform"]
    over = ["data.clip.extra_frames=0", "data.clip.extra_pixels=0"]
    if "extra_frames" in load_config("demo")["data"]["clip"]:
        argv += over
    assert extract_main(argv) == 0
    assert (entry.clips() or {}).get("n") == 1


def test_non_finite_audio_is_skipped_with_a_reason(tmp_path: Path) -> None:
    audio = tone(2.0).astype(np.float32)
    audio[12000:12100] = np.nan  # inside the (centred) clip window 0.5-1.5 s
    bad = _write_float_pcm(tmp_path / "nan.mkv", audio)
    good = _write_float_pcm(tmp_path / "ok.mkv", tone(2.0).astype(np.float32))
    s = extract_paths([bad, good], tmp_path / "cache", _spec(), workers=0, progress=False)
    recs = {Path(r["path"]).name: r for r in s.records}
    assert recs["ok.mkv"]["status"] == "ok"
    assert recs["nan.mkv"]["status"] == "skipped"
    assert recs["nan.mkv"]["reason"] == "non-finite audio: NaN or Inf audio samples in clip 0"
    info = ClipCache(tmp_path / "cache").entry(bad, _spec()).clips()
    assert info is not None and "non-finite audio" in info["error"]  # content: remembered


def test_timestamp_gap_is_bridged_by_at_most_one_second(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """4 frames with a 120 s gap do not become 961 frames: the last frame is held for
    MAX_GAP_SECONDS and the timeline jumps, with one warning naming the file."""
    video = _write_timed(tmp_path / "gap.mkv", [0.0, 0.125, 0.25, 120.25])
    with caplog.at_level(logging.WARNING, logger="elo.data.video"):
        dec = decode_video(video, fps=8.0, size=32, audio=False)
    assert 4 <= len(dec.frames) <= 3 + int(MAX_GAP_SECONDS * 8) + 1
    assert dec.times[-1] == pytest.approx(120.25)
    assert np.all(np.diff(dec.times) > 0)
    assert any("gap.mkv" in r.getMessage() and "gap" in r.getMessage() for r in caplog.records)


def test_max_seconds_bounds_decoding(tmp_path: Path) -> None:
    video = write_video(tmp_path / "long.mp4", moving_square(96, 32, 32), 8.0)  # 12 s
    full = decode_video(video, fps=8.0, size=32, audio=False)
    cut = decode_video(video, fps=8.0, size=32, audio=False, max_seconds=2.0)
    assert len(full.frames) == 96
    assert 16 <= len(cut.frames) <= 18
    np.testing.assert_array_equal(cut.frames, full.frames[: len(cut.frames)])
    spec = _spec("data.max_seconds=2")
    assert spec.max_seconds == 2.0 and spec.decode_params()["max_seconds"] == 2.0
    rec = extract_one(video, tmp_path / "cache", spec)
    assert rec["status"] == "ok" and rec["frames"] <= 18


def test_short_video_is_padded_by_default_and_counted(tmp_path: Path) -> None:
    """0.8 s at 8 fps is 6 frames, shorter than the 8-frame clip: padded by repeating
    the last frame (counted in the summary); ``data.clip.short=skip`` skips it."""
    frames = moving_square(6, 32, 32, seed=4)
    video = write_video(tmp_path / "short.mp4", frames, 8.0, tone(0.8))
    cache = tmp_path / "cache"
    spec = _spec()
    s = extract_paths([video], cache, spec, workers=0, progress=False)
    assert (s.ok, s.skipped, s.padded) == (1, 0, 1)
    assert s.records[0]["padded"] == 2 and "1 shorter than a clip, padded" in s.line()
    entry = ClipCache(cache).entry(video, spec)
    assert entry.clips()["padded"] == 2  # type: ignore[index]
    rgb = np.asarray(entry.open_array(spec.modality_tag("rgb")))
    assert rgb.shape[0] == 1 and rgb.shape[2] == 8  # N,C,T,H,W: one clip of 8 frames
    np.testing.assert_array_equal(rgb[0, :, 5], rgb[0, :, 6])
    np.testing.assert_array_equal(rgb[0, :, 5], rgb[0, :, 7])
    assert not np.array_equal(rgb[0, :, 4], rgb[0, :, 5])  # the square moves
    summary = [r for r in read_jsonl(cache / "extract_report.jsonl") if r["kind"] == "summary"]
    assert summary[-1]["padded"] == 1
    skip = extract_paths(
        [video], tmp_path / "c2", _spec("data.clip.short=skip"), workers=0, progress=False
    )
    assert skip.skipped == 1 and "too short" in skip.records[0]["reason"]
    assert json.dumps(skip.records[0])  # the record is JSON (goes to the report)
