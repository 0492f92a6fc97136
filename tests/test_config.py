"""Config composition, overrides and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from elo.config import apply_overrides, configs_dir, load_config, merge_checked, require
from elo.errors import ConfigError


def test_configs_dir_holds_experiments() -> None:
    assert (configs_dir() / "experiment" / "demo.yaml").is_file()


def test_demo_composes_components() -> None:
    cfg = load_config("demo")
    assert set(cfg) >= {"data", "model", "objective", "train", "search", "fitness", "seed"}
    assert cfg["train"]["steps"] == 10
    assert cfg["objective"]["modalities"] == ["rgb", "flow", "audio"]


def test_experiment_inherits_and_overrides_base() -> None:
    cfg = load_config("paper")
    assert cfg["data"]["clip"]["size"] == 224
    assert cfg["data"]["audio"]["sample_rate"] == 16000  # inherited from demo


def test_overrides_parse_yaml_values() -> None:
    cfg = load_config("demo", ["train.steps=7", "objective.modalities=[rgb,flow]", "train.lr=3e-4"])
    assert cfg["train"]["steps"] == 7
    assert cfg["objective"]["modalities"] == ["rgb", "flow"]
    assert cfg["train"]["lr"] == pytest.approx(3e-4)


def test_unknown_override_key_is_named_with_a_hint() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown config key 'train.step' \(did you mean 'steps'"
    ):
        load_config("demo", ["train.step=7"])
    with pytest.raises(ConfigError, match=r"must look like key=value"):
        apply_overrides({}, ["train.steps"])


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "x.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match=r"x.yaml: invalid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"no config 'nope'.*available experiment configs: "):
        load_config("nope")


def test_unsafe_yaml_tags_are_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.yaml"
    evil.write_text("a: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(evil)


def test_merge_checked_and_require() -> None:
    base = {"a": {"b": 1, "c": 2}, "d": 3}
    assert merge_checked(base, {"a": {"b": 5}}, "x") == {"a": {"b": 5, "c": 2}, "d": 3}
    with pytest.raises(ConfigError, match=r"unknown config key 'x.a.z'"):
        merge_checked(base, {"a": {"z": 5}}, "x")
    assert require({"a": {"b": 2}}, "a.b", float) == 2.0
    with pytest.raises(ConfigError, match=r"config key 'a.b' must be int, got 'x'"):
        require({"a": {"b": "x"}}, "a.b", int)
    with pytest.raises(ConfigError, match=r"missing config key 'a.q'"):
        require({"a": {}}, "a.q", int)
