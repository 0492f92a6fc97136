"""Encoders: shapes of the pyramid and embedding, tiny to paper scale, config errors,
and export / one-line load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import elo
from elo.config import compose, configs_dir
from elo.errors import ConfigError
from elo.model.encoders import build_audio_encoder, build_encoder, build_video_encoder
from elo.train.export import save_encoder


@pytest.mark.parametrize("conv", ["2plus1d", "3d", "2d"])
@pytest.mark.parametrize("in_channels,frames", [(3, 8), (2, 7)])
def test_video_encoder_pyramid_and_embedding(conv: str, in_channels: int, frames: int) -> None:
    enc = build_video_encoder(in_channels=in_channels, width=8, depth=3, embed_dim=24, conv=conv)
    out = enc(torch.randn(2, in_channels, frames, 32, 32))  # B,C,T,H,W
    assert out.embedding.shape == (2, 24) and enc.embed_dim == 24
    assert [p.shape[1] for p in out.pyramid] == list(enc.pyramid_channels) == [8, 16, 32]
    assert [p.shape[-1] for p in out.pyramid] == [16, 8, 4]  # stem /2, then /2 per stage
    t_sizes = [p.shape[2] for p in out.pyramid]
    assert t_sizes[0] == frames and (t_sizes[1] < frames) == (conv != "2d")
    out.embedding.sum().backward()
    assert all(p.grad is not None for p in enc.parameters())


def test_audio_encoder_pyramid_and_embedding() -> None:
    enc = build_audio_encoder(width=8, depth=3, embed_dim=16)
    out = enc(torch.randn(2, 1, 40, 101))  # B,1,F,Tm
    assert out.embedding.shape == (2, 16)
    assert [tuple(p.shape[1:]) for p in out.pyramid] == [(8, 20, 51), (16, 10, 26), (32, 5, 13)]


def test_paper_scale_config_is_a_2plus1d_resnet50() -> None:
    cfg = compose(configs_dir() / "model" / "r2plus1d_50.yaml")
    enc, kwargs = build_encoder("rgb", cfg["rgb"])
    assert enc.pyramid_channels == (256, 512, 1024, 2048)  # bottleneck x4 expansion
    blocks = [len(stage) for stage in enc.stages]
    assert blocks == [3, 4, 6, 3] and kwargs["in_channels"] == 3
    n = sum(p.numel() for p in enc.parameters())
    assert 45e6 < n < 65e6, n  # R(2+1)D-50 is ~53M plus the 2048-d projection


def test_every_model_config_builds_every_modality() -> None:
    from elo.model.encoders_tv import build_encoder as build_model_encoder

    for path in sorted((configs_dir() / "model").glob("*.yaml")):
        cfg = compose(path)
        for m in ("rgb", "flow", "audio"):
            enc, _ = build_model_encoder(m, cfg[m])  # as ELoModel builds it (arch switch)
            assert enc.embed_dim == cfg[m]["embed_dim"], (path, m)


def test_bad_encoder_options_name_the_key() -> None:
    with pytest.raises(ConfigError, match="model.rgb.widht"):
        build_encoder("rgb", {"widht": 8})
    with pytest.raises(ConfigError, match="unknown encoder block 'huge'"):
        build_video_encoder(width=8, depth=2, block="huge")
    with pytest.raises(ConfigError, match="layers must list 2"):
        build_video_encoder(width=8, depth=2, layers=[1])
    with pytest.raises(ConfigError, match="no encoder for modality 'depth'"):
        build_encoder("depth", {})


def test_positional_config_section_is_accepted() -> None:
    enc = build_video_encoder({"width": 8, "depth": 2, "embed_dim": 8}, in_channels=2)
    assert enc.pyramid_channels == (8, 16)
    assert enc.stem[0].in_channels == 2


def test_export_and_one_line_load(tmp_path: Path) -> None:
    torch.manual_seed(0)
    enc, kwargs = build_encoder("rgb", {"width": 8, "depth": 2, "embed_dim": 8})
    x = torch.randn(2, 3, 8, 32, 32)
    enc.train()(x)  # move BatchNorm running stats away from their init
    save_encoder(
        tmp_path,
        enc,
        builder="elo.encoders:build_video_encoder",
        kwargs=kwargs,
        input_info={"modality": "rgb", "shape": [3, 8, 32, 32]},
    )
    loaded = elo.load_encoder(tmp_path)
    assert not loaded.training
    with torch.no_grad():
        assert torch.allclose(loaded(x).embedding, enc.eval()(x).embedding, atol=1e-6)


def _effective_rank(e: torch.Tensor) -> float:
    """RankMe (Garrido et al., ICML 2023): exp of the entropy of the normalised
    singular values of the centred N,D embedding matrix."""
    s = torch.linalg.svdvals(e - e.mean(0))
    p = s / s.sum() + 1e-7
    return float(torch.exp(-(p * p.log()).sum()))


@pytest.fixture(scope="module")
def demo_test_clips(tmp_path_factory: pytest.TempPathFactory) -> torch.Tensor:
    """RGB clips of the demo test split, as the demo experiment feeds the encoder."""
    from elo.config import load_config
    from elo.data.datasets import make_loader
    from elo.data.demo_data import make_demo

    root = make_demo(
        tmp_path_factory.mktemp("rank") / "demo", clips=160, seed=0, workers=0, test_fraction=0.5
    )
    loader = make_loader(
        load_config("demo"), root, split="test", modalities=("rgb",), batch_size=40, shuffle=False
    )
    return torch.cat([b["rgb"] for b in loader])  # 80,3,8,32,32


def test_random_init_embeddings_are_spread(demo_test_clips: torch.Tensor) -> None:
    """torchvision-style init (Kaiming fan_out, BN 1/0): a random demo encoder's
    embeddings of the demo test split, with BatchNorm statistics of those clips (as the
    fitness embeds), have effective rank >= half the embedding dimension (PyTorch's
    default conv init gives ~2 of 64). Measured over seeds 0-4: 36.3-39.6
    (mean 38.4, sd 1.3; 80 clips): the bound 32 is ~5 sd below the mean."""
    from elo.config import load_config

    cfg = load_config("demo")
    ranks = []
    for seed in range(3):
        torch.manual_seed(seed)
        enc = build_video_encoder(dict(cfg["model"]["rgb"]))
        with torch.no_grad():
            enc.train()  # BatchNorm with the statistics of these clips
            emb = enc(demo_test_clips).embedding
        ranks.append(_effective_rank(emb))
    assert min(ranks) >= enc.embed_dim / 2, ranks


def test_convolutions_use_kaiming_fan_out_and_bn_starts_at_identity() -> None:
    enc = build_video_encoder(width=16, depth=3, embed_dim=32)
    convs = [m for m in enc.modules() if isinstance(m, torch.nn.Conv3d)]
    for conv in convs:
        fan_out = conv.weight.shape[0] * conv.weight[0, 0].numel()
        expected = (2.0 / fan_out) ** 0.5
        assert abs(float(conv.weight.detach().std()) / expected - 1) < 0.25, (conv, expected)
    bns = [m for m in enc.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert bns and all(bool((b.weight == 1).all() and (b.bias == 0).all()) for b in bns)


def test_modality_builders_write_the_export_ids() -> None:
    """Each modality builds its encoder itself; the builder id it reports is the stable
    ``encoder.yaml`` id the export accepts (elo/train/export.py), and rebuilding from
    that id and the kwargs gives the same architecture."""
    from elo.model.encoders_tv import export_builder
    from elo.model.modality import MODALITIES
    from elo.train.export import ENCODER_BUILDERS as EXPORT_IDS
    from elo.train.export import _resolve

    seen = set()
    for path in sorted((configs_dir() / "model").glob("*.yaml")):
        cfg = compose(path)
        for m in ("rgb", "flow", "audio"):
            built = MODALITIES.get(m).build_encoder(cfg[m])
            seen.add(built.builder)
            assert built.builder in EXPORT_IDS, (path.name, m, built.builder)
            if MODALITIES.get(m).video_like:
                assert built.builder == export_builder(built.kwargs)
            again = _resolve(built.builder)(**built.kwargs)
            assert type(again) is type(built.encoder)
            assert again.pyramid_channels == built.encoder.pyramid_channels
    assert seen == {
        "elo.encoders:build_video_encoder",
        "elo.encoders:build_audio_encoder",
        "elo.encoders_tv:build_r2plus1d_18",
    }
