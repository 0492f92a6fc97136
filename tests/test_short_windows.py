"""A video shorter than the cached clip (``data.clip.frames + extra_frames``) is padded
with its last frame; the model's window must stay inside its real frames, in training
(random windows, elo/model/network.py) and in evaluation (the centre window,
elo/data/datasets.py). Otherwise a 1 s video cached as 2 s shows the encoder a frozen
frame for half of every window (docs/learning.md: contrastive probe 0.18 with
the padded windows vs 0.41 without on 1 s demo videos)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from _media import frame_index_pattern, tone, write_video

from elo.config import load_config
from elo.data.datasets import make_loader
from elo.model.network import ELoModel
from elo.model.objective import Weights, terms_from_config
from elo.model.views import valid_time_fraction

OVER = [
    "data.clip.size=32",
    "data.clip.frames=8",
    "data.clip.extra_frames=8",  # cached: 16 frames
    "data.clip.extra_pixels=0",
    "data.clip.sampling=uniform",
    "data.modalities.rgb.center_time=false",
]


def _levels(x: torch.Tensor) -> list[int]:
    """Frame index per frame of a ``3,T,H,W`` normalised clip (frame_index_pattern)."""
    pix = (x * 0.225 + 0.45) * 255  # undo the rgb normalisation
    mean = pix.mean(dim=(0, 2, 3)).numpy()
    return [int(round((m - 10) / 12)) for m in mean]


def _dataset(tmp_path: Path, frames: int) -> tuple[dict, object]:
    root = tmp_path / "videos"
    write_video(root / "a" / "clip.mp4", frame_index_pattern(frames, 32, 32), 8.0, tone(2.0))
    cfg = load_config("demo", OVER)
    loader = make_loader(cfg, root, modalities=("rgb", "flow"), batch_size=1, shuffle=False)
    return cfg, loader


def test_fraction_narrowing() -> None:
    frac = torch.tensor([0.0, 0.5, 1.0])
    # 16 cached, 8-frame window, 10 real frames: starts 0..2 of the free 0..8
    out = valid_time_fraction(frac, 10, cached=16, frames=8)
    assert torch.allclose(out * 8, torch.tensor([0.0, 1.0, 2.0]))
    # every frame real: unchanged; shorter than the window itself: start 0
    assert torch.equal(valid_time_fraction(frac, 16, cached=16, frames=8), frac)
    assert torch.equal(valid_time_fraction(frac, 5, cached=16, frames=8), torch.zeros(3))
    # nothing cached beyond the window: nothing to narrow
    assert torch.equal(valid_time_fraction(frac, 8, cached=8, frames=8), frac)


def test_the_centre_window_of_a_padded_video_holds_real_frames(tmp_path: Path) -> None:
    """10 real frames cached as 16: the centre window is frames 1..8, never the
    repeated last frame (the uncorrected centre, frames 4..11, held two copies of 9)."""
    _, loader = _dataset(tmp_path, 10)
    batch = next(iter(loader))
    assert int(batch["meta"]["valid_frames"][0]) == 10
    assert _levels(batch["rgb"][0]) == list(range(1, 9))
    assert batch["flow"].shape[2] == 7


def test_training_windows_of_a_padded_video_stay_in_its_real_frames(tmp_path: Path) -> None:
    cfg, _ = _dataset(tmp_path, 10)
    loader = make_loader(
        cfg,
        tmp_path / "videos",
        modalities=("rgb", "flow"),
        batch_size=1,
        shuffle=False,
        uncropped=True,
    )
    batch = next(iter(loader))
    assert batch["rgb"].shape[2] == 16
    terms = terms_from_config(cfg)
    model = ELoModel(
        cfg, Weights(terms, {str(t): float(str(t) == "rgb/reconstruction") for t in terms})
    )
    model.train()
    starts = set()
    for step in range(40):
        x = model.crop_inputs(batch, step)["rgb"][0]
        levels = _levels(x)
        assert levels == list(range(levels[0], levels[0] + 8)), levels  # no repeated frame
        starts.add(levels[0])
    assert starts == {0, 1, 2}  # the whole real range is used
    full = {**batch, "meta": {k: v for k, v in batch["meta"].items() if k != "valid_frames"}}
    reach = {_levels(model.crop_inputs(full, s)["rgb"][0])[0] for s in range(40)}
    assert max(reach) > 2  # without the count, windows reach the padded tail (what it guards)


def test_a_long_video_uses_its_whole_cached_range(tmp_path: Path) -> None:
    _, loader = _dataset(tmp_path, 16)
    batch = next(iter(loader))
    assert int(batch["meta"]["valid_frames"][0]) == 16
    assert _levels(batch["rgb"][0]) == list(np.arange(4, 12))  # the plain centre


def test_time_centring_leaves_the_padded_tail_out() -> None:
    """``center_time`` subtracts the mean of the real frames only: with half the cached
    clip a repeated last frame, the padded mean would leave that frame's static image
    in every centred frame."""
    from elo.modalities.rgb import RGB

    rng = np.random.default_rng(0)
    real = rng.integers(0, 255, (3, 10, 4, 4)).astype(np.uint8)
    padded = np.concatenate([real, np.repeat(real[:, -1:], 6, axis=1)], axis=1)  # 16 frames
    params = {**RGB.params({"center_time": True}), "valid_frames": 10}
    x = RGB.to_tensor(padded, params)
    assert x[:, :10].mean(dim=1).abs().max() < 1e-5  # real frames centred on themselves
    whole = RGB.to_tensor(padded, RGB.params({"center_time": True}))  # no count: all 16
    assert whole[:, :10].mean(dim=1).abs().max() > 0.05
