"""Encoder export: safetensors + YAML, loaded in one line, never unpickling code."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from elo.errors import ConfigError
from elo.export import CONFIG_FILE, load_encoder, save_encoder


def build_toy(width: int = 4) -> nn.Module:
    return nn.Sequential(nn.Linear(3, width), nn.ReLU(), nn.Linear(width, 2))


def test_builder_outside_elo_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="inside ELo's packages"):
        save_encoder(tmp_path, build_toy(), builder="os:system", kwargs={})
    (tmp_path / "encoder.yaml").write_text("builder: os:system\nkwargs: {}\n")
    (tmp_path / "rgb_encoder.safetensors").write_bytes(b"")
    with pytest.raises(ConfigError, match="inside ELo's packages"):
        load_encoder(tmp_path)


def test_round_trip_allowed_builder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import elo.export as ex

    monkeypatch.setattr(ex, "_ALLOWED_PREFIXES", (*ex._ALLOWED_PREFIXES, "tests."))
    torch.manual_seed(0)
    enc = build_toy(5)
    save_encoder(tmp_path, enc, builder="tests.test_export:build_toy", kwargs={"width": 5})
    loaded = load_encoder(tmp_path)
    x = torch.randn(7, 3)
    assert not loaded.training
    assert torch.equal(loaded(x), enc(x))
    assert loaded.export_info["kwargs"] == {"width": 5}


def test_mismatched_weights_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import elo.export as ex

    monkeypatch.setattr(ex, "_ALLOWED_PREFIXES", (*ex._ALLOWED_PREFIXES, "tests."))
    save_encoder(tmp_path, nn.Linear(3, 3), builder="tests.test_export:build_toy", kwargs={})
    with pytest.raises(ConfigError, match="weights do not match"):
        load_encoder(tmp_path)


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"{CONFIG_FILE} not found"):
        load_encoder(tmp_path)
