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


@pytest.mark.parametrize(
    "text, key, hint",
    [
        ("trian:\n  steps: 5\n", "trian", "train"),
        ("data:\n  clip:\n    frmaes: 4\n", "data.clip.frmaes", "frames"),
        ("objective:\n  modalites: [rgb]\n", "objective.modalites", "modalities"),
        ("search:\n  ga:\n    tournamnet: 2\n", "search.ga.tournamnet", "tournament"),
        ("data:\n  modalities:\n    flwo: {method: dis}\n", "data.modalities.flwo", "flow"),
    ],
)
def test_typo_in_a_config_file_is_named_with_file_and_hint(
    tmp_path: Path, text: str, key: str, hint: str
) -> None:
    """A misspelled key in a YAML file is an error like a misspelled override (it
    does not load and silently do nothing)."""
    exp = tmp_path / "mine.yaml"
    exp.write_text("defaults:\n  base: demo\n" + text)
    with pytest.raises(ConfigError) as err:
        load_config(exp)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"{exp}: unknown config key '{key}'")
    assert f"did you mean '{hint}'" in msg
    # the same file without defaults (a standalone experiment) is checked too
    exp.write_text(text)
    with pytest.raises(ConfigError, match=f"unknown config key '{key}'"):
        load_config(exp)


def test_typo_in_a_component_file_names_that_file(tmp_path: Path) -> None:
    data = tmp_path / "mydata.yaml"
    data.write_text((configs_dir() / "data" / "demo.yaml").read_text() + "cahce: x\n")
    exp = tmp_path / "exp.yaml"
    exp.write_text(f"defaults:\n  base: demo\n  data: {data}\n")
    with pytest.raises(ConfigError, match=rf"^{data}: unknown config key 'data.cahce' .*'cache'"):
        load_config(exp)


def test_known_keys_in_files_still_load(tmp_path: Path) -> None:
    """Options owned by a task head or a modality, and builder options the shipped
    model files leave at their defaults, are accepted; so is every shipped profile."""
    exp = tmp_path / "ok.yaml"
    exp.write_text(
        "defaults:\n  base: demo\n"
        "heads:\n  anything: {x: 1}\n"
        "data:\n  modalities:\n    flow: {method: farneback, custom: 1}\n"
        "model:\n  rgb: {stem_kernel: 3}\n"
    )
    cfg = load_config(exp)
    assert cfg["data"]["modalities"]["flow"]["method"] == "farneback"
    assert cfg["model"]["rgb"]["stem_kernel"] == 3
    for name in sorted(p.stem for p in (configs_dir() / "experiment").glob("*.yaml")):
        assert load_config(name)["seed"] == 0
