"""Encoder export: safetensors + YAML, loaded in one line, never unpickling code."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from elo.errors import ConfigError
from elo.train.export import CONFIG_FILE, load_encoder, save_encoder


def build_toy(width: int = 4) -> nn.Module:
    return nn.Sequential(nn.Linear(3, width), nn.ReLU(), nn.Linear(width, 2))


def test_builder_outside_elo_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not allowed"):
        save_encoder(tmp_path, build_toy(), builder="os:system", kwargs={})
    (tmp_path / "encoder.yaml").write_text("builder: os:system\nkwargs: {}\n")
    (tmp_path / "rgb_encoder.safetensors").write_bytes(b"")
    with pytest.raises(ConfigError, match="is not allowed"):
        load_encoder(tmp_path)


def test_crafted_folder_writes_nothing(tmp_path: Path) -> None:
    """A crafted encoder.yaml naming an ELo function that writes files (were it
    called, it would write ``target`` and so could plant ``tasks/x.py``) is refused in
    one line naming the file, and nothing is written."""
    target = tmp_path / "planted.py"
    enc = tmp_path / "enc"
    enc.mkdir()
    (enc / "rgb_encoder.safetensors").write_bytes(b"")
    for builder in (
        "elo.rundir:atomic_write_text",
        "tasks._common:tap_decoder",
        "elo:load_encoder",
    ):
        doc = {"builder": builder, "kwargs": {"path": str(target), "text": "import os\n"}}
        (enc / CONFIG_FILE).write_text(yaml.safe_dump(doc))
        with pytest.raises(ConfigError) as err:
            load_encoder(enc)
        msg = str(err.value)
        assert "\n" not in msg and str(enc / CONFIG_FILE) in msg and "not allowed" in msg
        assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enc"]


@pytest.mark.parametrize(
    "kwargs, why",
    [
        ({"width": 8, "path": "/tmp/x"}, "takes no argument 'path'"),
        ({"width": "8"}, "width='8' is out of range"),
        ({"width": 10**9}, "out of range"),
        ({"conv": "__import__('os')"}, "out of range"),
        ({"layers": [1, "x"]}, "out of range"),
        ({"depth": True}, "out of range"),
    ],
)
def test_allowed_builder_arguments_are_validated(
    tmp_path: Path, kwargs: dict[str, object], why: str
) -> None:
    (tmp_path / "rgb_encoder.safetensors").write_bytes(b"")
    doc = {"builder": "elo.encoders:build_video_encoder", "kwargs": kwargs}
    (tmp_path / CONFIG_FILE).write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=why):
        load_encoder(tmp_path)
    with pytest.raises(ConfigError, match=why):
        save_encoder(tmp_path / "out", build_toy(), builder=doc["builder"], kwargs=kwargs)
    assert not (tmp_path / "out").exists()


def test_real_builders_round_trip(tmp_path: Path) -> None:
    """Every builder the project exports with stays loadable under the allow-list."""
    from elo.evaluation.pixel_stats import PIXEL_STATS_BUILDER, build_pixel_stats_encoder
    from elo.model.encoders import build_video_encoder

    torch.manual_seed(0)
    enc = build_video_encoder(width=4, depth=2, embed_dim=8)
    kw = {"in_channels": 3, "width": 4, "depth": 2, "embed_dim": 8}
    save_encoder(tmp_path / "v", enc, builder="elo.encoders:build_video_encoder", kwargs=kw)
    x = torch.randn(2, 3, 4, 16, 16)
    assert torch.equal(load_encoder(tmp_path / "v")(x).embedding, enc.eval()(x).embedding)
    save_encoder(
        tmp_path / "p", build_pixel_stats_encoder(), builder=PIXEL_STATS_BUILDER, kwargs={}
    )
    assert load_encoder(tmp_path / "p")(x).embedding.shape[0] == 2


def test_invalid_yaml_one_line(tmp_path: Path) -> None:
    (tmp_path / "rgb_encoder.safetensors").write_bytes(b"")
    (tmp_path / CONFIG_FILE).write_text("builder: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_encoder(tmp_path)


def test_round_trip_allowed_builder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import elo.train.export as ex

    monkeypatch.setitem(
        ex.ENCODER_BUILDERS, "tests.test_export:build_toy", {"width": ex._int(1, 9)}
    )
    torch.manual_seed(0)
    enc = build_toy(5)
    save_encoder(tmp_path, enc, builder="tests.test_export:build_toy", kwargs={"width": 5})
    loaded = load_encoder(tmp_path)
    x = torch.randn(7, 3)
    assert not loaded.training
    assert torch.equal(loaded(x), enc(x))
    assert loaded.export_info["kwargs"] == {"width": 5}


def test_mismatched_weights_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import elo.train.export as ex

    monkeypatch.setitem(
        ex.ENCODER_BUILDERS, "tests.test_export:build_toy", {"width": ex._int(1, 9)}
    )
    save_encoder(tmp_path, nn.Linear(3, 3), builder="tests.test_export:build_toy", kwargs={})
    with pytest.raises(ConfigError, match="weights do not match"):
        load_encoder(tmp_path)


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"{CONFIG_FILE} not found"):
        load_encoder(tmp_path)
