"""A modality is one file: a fourth modality (grey-level frame differences, derived
from the decoded clip, with its own encoder builder and input shape) dropped into the
``modalities`` package joins the term space and trains, with no other edit.

The drop folder is a temporary folder joined to the package's path (as
tests/test_registry.py does for tasks), so the source tree is never written.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from _configs import bare_experiment
from _media import moving_square, write_video

import elo.modalities as modalities_pkg
from elo.config import load_config
from elo.model.modality import MODALITIES, input_shapes
from elo.model.network import ELoModel
from elo.model.objective import Weights, enumerate_terms, task_names, terms_from_config

NAME = "framediff"

PLUGIN = '''
"""Grey-level frame differences ``1,T-1,H,W``: a drop-in modality with its own encoder."""

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from elo.model.heads import EncoderOutput
from elo.model.modality import MODALITIES, DecodedClip, Encoder, EncoderBuild, Modality


class DiffEncoder(Encoder):
    """Three strided 3D convolutions (the pyramid) and a projected global average."""

    def __init__(self, *, in_channels: int = 1, width: int = 4, embed_dim: int = 16) -> None:
        super().__init__()
        chans = [width, 2 * width, 4 * width]
        ins = [in_channels, *chans[:-1]]
        strides = [(1, 2, 2), 2, 2]
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Conv3d(i, o, 3, stride=s, padding=1), nn.ReLU())
            for s, i, o in zip(strides, ins, chans)
        )
        self.pyramid_channels = tuple(chans)
        self.embed_dim = embed_dim
        self.proj = nn.Linear(chans[-1], embed_dim)

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        pyramid, h = [], x
        for stage in self.stages:
            h = stage(h)
            pyramid.append(h)
        return EncoderOutput(pyramid=pyramid, embedding=self.proj(h.mean(dim=(2, 3, 4))))


def build_diff_encoder(*, in_channels: int = 1, width: int = 4, embed_dim: int = 16) -> DiffEncoder:
    return DiffEncoder(in_channels=in_channels, width=width, embed_dim=embed_dim)


@MODALITIES.register()
class FrameDiff(Modality):
    name: ClassVar[str] = "framediff"
    defaults: ClassVar[Mapping[str, Any]] = {"gain": 4.0}
    video_like: ClassVar[bool] = True

    @classmethod
    def extract(cls, clip: DecodedClip, params: Mapping[str, Any]) -> np.ndarray | None:
        grey = clip.frames.astype(np.float32).mean(axis=-1) / 255.0  # T,H,W
        return (np.diff(grey, axis=0)[None] * float(params["gain"])).astype(np.float16)

    @classmethod
    def output_shape(cls, frames, size, fps, sample_rate, params):
        return (1, frames - 1, size, size)

    @classmethod
    def build_encoder(cls, config: Mapping[str, Any] | None) -> EncoderBuild:
        kwargs = {"in_channels": 1, **dict(config or {})}
        return EncoderBuild(build_diff_encoder(**kwargs), "framediff:build_diff_encoder", kwargs)
'''


@pytest.fixture()
def framediff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``modalities/framediff.py``, dropped into the package from a temporary folder."""
    assert NAME not in MODALITIES
    drop = tmp_path / "modalities"
    drop.mkdir()
    (drop / f"{NAME}.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.setattr(modalities_pkg, "__path__", [*modalities_pkg.__path__, str(drop)])
    importlib.invalidate_caches()
    try:
        MODALITIES.discover(force=True)
        yield NAME
    finally:
        MODALITIES.remove(NAME)
        sys.modules.pop(f"elo.modalities.{NAME}", None)


def test_it_joins_the_term_space(framediff: str) -> None:
    mods = ["rgb", "flow", "audio", framediff]
    keys = [
        str(t) for t in enumerate_terms(mods, task_names(), [*mods[1:]], "rgb", distill_levels=[2])
    ]
    for key in [
        "framediff/reconstruction",
        "framediff/future",
        "framediff/temporal_order",
        "rgb+framediff/alignment",
        "flow+framediff/contrastive",
        "rgb->framediff/transfer",  # a video-like source may predict it...
        "framediff->flow/transfer",  # ...and, video-like itself, it may predict others
        "framediff->audio/transfer",
        "distill/framediff->rgb@2",
    ]:
        assert key in keys, key
    assert "framediff->rgb/transfer" not in keys  # rgb is no transfer target
    cfg = bare_experiment(data={"clip": {"frames": 8, "size": 32}})
    assert input_shapes(cfg)[framediff] == (1, 7, 32, 32)


def test_list_terms_prints_its_terms(framediff: str, capsys: pytest.CaptureFixture[str]) -> None:
    from elo.cli import train_main

    assert train_main(["--list-terms"]) == 0
    default = capsys.readouterr().out.split()
    assert len(default) == 24 and not any(framediff in k for k in default)  # not configured
    over = f"objective.modalities=[rgb,flow,audio,{framediff}]"
    assert train_main(["--list-terms", over, f"objective.distill.teachers=[{framediff}]"]) == 0
    listed = capsys.readouterr().out.split()
    ours = [k for k in listed if framediff in k]
    assert ours[:3] == [
        "rgb+framediff/alignment",
        "flow+framediff/alignment",
        "audio+framediff/alignment",
    ]
    assert listed[-1] == "distill/framediff->rgb@4" and len(ours) == 16, listed


def _videos(root: Path, n: int = 4) -> Path:
    for i in range(n):
        frames = moving_square(16, 32, 32, speed=(2 - i, 1 + i % 2), side=8, seed=i)
        write_video(root / f"clip{i}.mp4", frames, fps=8.0)
    return root


def _config(framediff: str) -> dict[str, Any]:
    return load_config(
        "demo",
        [
            "data.clip.frames=8",
            "data.clip.size=32",
            "data.clip.sampling=uniform",
            f"objective.modalities=[rgb,{framediff}]",
            f"objective.distill.teachers=[{framediff}]",
            "objective.distill.levels=[2]",
            "model.rgb={width: 4, depth: 3, embed_dim: 16}",
            "train.batch_size=4",
            "train.num_workers=0",
        ],
    )


def _weights(cfg: dict[str, Any], framediff: str) -> Weights:
    terms = terms_from_config(cfg)
    return Weights(terms, {str(t): float(framediff in t.modalities) for t in terms})


def test_it_is_extracted_encoded_and_trained(framediff: str, tmp_path: Path) -> None:
    """From video files through the cache and the dataset into the model: its terms'
    losses are finite, its encoder gets gradients and its weights change."""
    from elo.data.datasets import make_loader

    cfg = _config(framediff)
    root = _videos(tmp_path / "videos")
    loader = make_loader(cfg, root, modalities=["rgb", framediff], batch_size=4, shuffle=False)
    batch = next(iter(loader))
    assert tuple(batch[framediff].shape) == (4, 1, 7, 32, 32)
    assert float(batch[framediff].abs().max()) > 0.01  # the square moves
    weights = _weights(cfg, framediff)
    assert len(weights.active) == 7  # alignment, contrastive, future, reconstruction,
    # temporal_order, rgb->framediff transfer, distillation into rgb
    torch.manual_seed(0)
    model = ELoModel(cfg, weights).train()
    enc = model.encoders[framediff]
    assert type(enc).__name__ == "DiffEncoder"
    assert model.encoder_builders[framediff] == "framediff:build_diff_encoder"
    before = [p.detach().clone() for p in enc.parameters()]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(3):
        opt.zero_grad()
        out = model(batch, step=step)
        assert all(torch.isfinite(v) for v in out.raw.values()), out.raw
        out.total.backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())
        opt.step()
    assert all(
        not torch.equal(a, b.detach()) for a, b in zip(before, enc.parameters(), strict=True)
    )


def test_elo_train_trains_it(framediff: str, tmp_path: Path) -> None:
    """``train_model`` (what elo-train runs) on the same videos: the loader asks for the
    modality the active terms read, and every step's loss is finite."""
    from elo.train.trainer import train_model

    cfg = _config(framediff)
    result = train_model(
        cfg,
        _weights(cfg, framediff),
        data_root=_videos(tmp_path / "videos"),
        steps=2,
        out_dir=tmp_path / "run",
        progress=False,
    )
    assert result.steps_done == 2 and framediff in result.model.encoders
    assert all(np.isfinite(h["loss"]) for h in result.history)
    assert (tmp_path / "run" / "encoder.yaml").is_file()  # the RGB student, exported
