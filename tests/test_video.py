"""PyAV decoding on real files: containers, fps resampling, resize + crop, audio
windows, AAC priming, missing audio, clip sampling."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
from _media import click_track, frame_index_pattern, moving_square, onset_time, tone, write_video

from elo.data.video import clip_starts, cut_clips, decode_video
from elo.errors import DataError
from elo.model.modality import MODALITIES

CONTAINERS = [".mp4", ".avi", ".mkv", ".webm", ".mov"]


@pytest.mark.parametrize("suffix", CONTAINERS)
def test_containers_decode_frames_at_target_fps_and_audio(tmp_path: Path, suffix: str) -> None:
    frames = frame_index_pattern(20, 48, 64)  # frame i has brightness 10 + 12 i
    path = write_video(tmp_path / f"v{suffix}", frames, fps=10.0, audio=tone(2.0))
    v = decode_video(path, fps=5.0, size=32)
    assert v.frames.shape == (10, 32, 32, 3) and v.frames.dtype == np.uint8
    np.testing.assert_allclose(np.diff(v.times), 0.2, atol=1e-6)
    # every other source frame is picked: brightness 10, 34, 58, ... (lossy codec: ±4)
    np.testing.assert_allclose(v.frames.mean(axis=(1, 2, 3)), 10 + 24 * np.arange(10), atol=4)
    assert v.audio is not None and v.sample_rate == 16000
    assert abs(len(v.audio) - 32000) <= 1024  # the encoder pads its last frame
    spectrum = np.abs(np.fft.rfft(v.audio[4000:20000]))
    assert abs(np.argmax(spectrum) * 16000 / 16000 - 440) < 2  # still a 440 Hz tone


def test_odd_fps_and_odd_size_are_resampled_resized_and_cropped(tmp_path: Path) -> None:
    frames = frame_index_pattern(25, 55, 97)  # 97x55 (odd), 12.5 fps, 2 s
    frames[:, :, :20] = 0  # a dark left border that the centre crop must cut away
    path = write_video(tmp_path / "odd.mkv", frames, fps=12.5)
    v = decode_video(path, fps=8.0, size=40)
    assert v.frames.shape[1:] == (40, 40, 3)
    assert len(v.frames) == 16  # 2 s at 8 fps
    np.testing.assert_allclose(np.diff(v.times), 1 / 8, atol=1e-6)
    # nearest source frame for t = k/8 is round(k * 12.5 / 8)
    expect = np.minimum(10 + 12 * np.round(np.arange(16) * 12.5 / 8 + 1e-9), 250)
    np.testing.assert_allclose(v.frames[:, :, 5:-5].mean(axis=(1, 2, 3)), expect, atol=5)
    assert v.frames[:, :, :2].mean() > 5  # border cropped (resize 97x55 -> 71x40, crop 40)
    assert v.audio is None


@pytest.mark.parametrize(
    ("suffix", "audio_pts"),
    [(".mp4", True), (".mp4", False), (".mov", False), (".mkv", True), (".avi", True)],
)
def test_click_track_stays_in_sync_despite_aac_priming(
    tmp_path: Path, suffix: str, audio_pts: bool
) -> None:
    """A click at 0.75 s must be 0.25 s into a clip that starts at 0.5 s. With
    ``audio_pts=False`` the MP4 carries 1024 undeclared AAC priming samples (64 ms)."""
    frames = moving_square(16, 32, 32)
    path = write_video(
        tmp_path / f"click{suffix}",
        frames,
        fps=8.0,
        audio=click_track(2.0, 0.75),
        audio_pts=audio_pts,
    )
    v = decode_video(path, fps=8.0, size=32)
    (clip,) = cut_clips(v, 8, [4])
    assert clip.start == pytest.approx(0.5)
    assert clip.audio is not None and len(clip.audio) == 16000  # exactly the 1 s window
    assert onset_time(clip.audio, 16000) == pytest.approx(0.25, abs=0.002)


def test_video_without_audio_is_missing_not_zeros(tmp_path: Path) -> None:
    path = write_video(tmp_path / "silent.mp4", moving_square(16, 32, 32), fps=8.0)
    v = decode_video(path, fps=8.0, size=32)
    (clip,) = cut_clips(v, 8, [0])
    assert clip.audio is None
    audio = MODALITIES.get("audio")
    assert audio.extract(clip, audio.params()) is None


def test_modalities_shapes_and_flow_direction(tmp_path: Path) -> None:
    frames = moving_square(16, 64, 64, speed=(3, 0), side=12)
    path = write_video(tmp_path / "m.mp4", frames, fps=8.0, audio=tone(2.0, 880))
    (clip,) = cut_clips(decode_video(path, fps=8.0, size=64), 8, [2])
    out = {}
    for name in ("rgb", "flow", "audio"):
        cls = MODALITIES.get(name)
        p = cls.params()
        out[name] = cls.extract(clip, p)
        assert out[name].shape == cls.output_shape(8, 64, 8.0, 16000, p)  # type: ignore[attr-defined]
    assert out["rgb"].dtype == np.uint8
    flow = out["flow"].astype(np.float32)  # 2,T-1,H,W in pixels, clipped to ±bound
    assert np.abs(flow).max() <= MODALITIES.get("flow").params()["bound"]
    moving = np.abs(flow).sum(0) > 0.1
    # measured 1.08 and -0.008 px per frame
    assert flow[0][moving].mean() > 0.5 and abs(flow[1][moving].mean()) < 0.4  # rightwards
    mel = out["audio"].astype(np.float32)[0]  # F,Tm
    assert np.isfinite(mel).all() and mel.mean(1).argmax() > 10  # 880 Hz is not the lowest band


@pytest.mark.parametrize("method", ["farneback", "tvl1"])
def test_other_flow_methods_agree_on_direction(tmp_path: Path, method: str) -> None:
    if method == "tvl1" and not hasattr(importlib.import_module("cv2"), "optflow"):
        pytest.skip("TV-L1 needs OpenCV contrib, not installed by default (docs/dependencies.md)")
    frames = moving_square(4, 32, 32, speed=(0, 2), side=10)
    path = write_video(tmp_path / "f.avi", frames, fps=8.0)
    (clip,) = cut_clips(decode_video(path, fps=8.0, size=32), 3, [0])
    flow_cls = MODALITIES.get("flow")
    flow = flow_cls.extract(clip, flow_cls.params({"method": method})).astype(np.float32)
    moving = np.abs(flow).sum(0) > 0.05
    assert flow[1][moving].mean() > 0.05 and flow[1][moving].mean() > 3 * abs(
        flow[0][moving].mean()
    )


def test_clip_starts() -> None:
    assert clip_starts(16, 8, per_video=1) == [4]  # centred
    assert clip_starts(16, 8, per_video=3) == [1, 4, 7]
    assert clip_starts(7, 8) == []
    a = clip_starts(40, 8, per_video=4, sampling="random", rng=np.random.default_rng(1))
    b = clip_starts(40, 8, per_video=4, sampling="random", rng=np.random.default_rng(1))
    assert a == b and len(set(a)) == 4 and max(a) <= 32
    assert clip_starts(20, 8, sampling="sliding", stride=4, per_video=0) == [0, 4, 8, 12]
    with pytest.raises(DataError, match="unknown clip sampling"):
        clip_starts(20, 8, sampling="bogus")


def test_undecodable_file_raises_one_line_data_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x01garbage" * 100)
    with pytest.raises(DataError, match="bad.mp4: cannot open") as info:
        decode_video(bad, fps=8.0, size=32)
    assert "\n" not in str(info.value)
