"""torchvision's R(2+1)D-18 as an ELo encoder (configs/model/r2plus1d_18.yaml): it is
torchvision's network (its weights load and give the same features), it fits rgb and
flow but not audio, an experiment selects it from the config, trains with it, and the
exported encoder reloads in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_tasks import real_batch, tiny_cfg, write_clips

import elo
from elo.config import load_config
from elo.errors import ConfigError
from elo.model.encoders_tv import R2Plus1D18Encoder, build_encoder, build_r2plus1d_18
from elo.model.objective import Weights, terms_from_config
from elo.train.trainer import train_model


def test_it_is_torchvision_r2plus1d_18() -> None:
    from torchvision.models.video import r2plus1d_18

    torch.manual_seed(0)
    tv = r2plus1d_18(weights=None).eval()
    enc = build_r2plus1d_18().eval()
    missing = enc.load_state_dict(
        {k: v for k, v in tv.state_dict().items() if not k.startswith("fc.")}
    )
    assert not missing.missing_keys and not missing.unexpected_keys
    x = torch.randn(2, 3, 4, 32, 32)  # B,C,T,H,W
    with torch.no_grad():
        h = tv.stem(x)
        for stage in (tv.layer1, tv.layer2, tv.layer3, tv.layer4):
            h = stage(h)
        want = tv.avgpool(h).flatten(1)  # B,512: the features under torchvision's classifier
        out = enc(x)
    assert torch.allclose(out.embedding, want, atol=1e-5)
    assert [p.shape[1] for p in out.pyramid] == [64, 128, 256, 512]
    n = sum(p.numel() for p in enc.parameters())
    assert n == sum(p.numel() for k, p in tv.named_parameters() if not k.startswith("fc."))


def test_modalities_that_fit_and_errors() -> None:
    flow, kwargs = build_encoder("flow", {"arch": "r2plus1d_18", "embed_dim": 32})
    assert isinstance(flow, R2Plus1D18Encoder) and kwargs["in_channels"] == 2
    out = flow(torch.zeros(1, 2, 3, 32, 32))
    assert out.embedding.shape == (1, 32)
    with pytest.raises(ConfigError, match="fits rgb and flow, not audio"):
        build_encoder("audio", {"arch": "r2plus1d_18"})
    with pytest.raises(ConfigError, match="unknown config key 'model.rgb.width' for arch"):
        build_encoder("rgb", {"arch": "r2plus1d_18", "width": 8})
    own, _ = build_encoder("rgb", {"width": 8, "depth": 2, "embed_dim": 16})
    assert not isinstance(own, R2Plus1D18Encoder)  # no arch: the project's own encoder


def test_experiment_selects_it_and_the_export_reloads(tmp_path: Path) -> None:
    exp = tmp_path / "tv.yaml"
    exp.write_text("defaults:\n  data: demo\n  model: r2plus1d_18\n  objective: default\n")
    cfg = load_config(exp)
    assert cfg["model"]["rgb"] == {"arch": "r2plus1d_18", "embed_dim": 512}
    assert cfg["model"]["flow"]["arch"] == "r2plus1d_18"

    data = write_clips(tmp_path / "videos", 4, seed=3)
    run = tiny_cfg()
    run["model"]["rgb"] = {"arch": "r2plus1d_18", "embed_dim": 64}
    run["objective"].update({"modalities": ["rgb"], "tasks": ["temporal_order"]})
    run["train"].update({"steps": 1, "batch_size": 2, "checkpoint_every": 0})
    terms = terms_from_config(run)
    w = Weights(terms, {str(t): 1.0 for t in terms})
    res = train_model(run, w, data_root=data, steps=1, out_dir=tmp_path / "out", progress=False)
    enc = elo.load_encoder(tmp_path / "out")
    assert isinstance(enc, R2Plus1D18Encoder)
    x = real_batch(data, 2, ["rgb"])["rgb"]
    with torch.no_grad():
        want = res.model.encoders["rgb"].eval()(x).embedding
        assert torch.allclose(enc(x).embedding, want, atol=1e-5)
