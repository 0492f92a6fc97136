"""Configuration: YAML files in ``configs/`` (one per component), composed by
experiment files, with ``key=value`` overrides and validation that names the bad key.

An experiment file lists the component files it builds on::

    # configs/experiment/demo.yaml
    defaults:
      data: demo          # -> configs/data/demo.yaml, placed under key "data"
      model: tiny
    train:
      steps: 40           # then deep-merged on top

Overrides use dotted keys, values parsed as YAML: ``train.lr=3e-4 tasks=[a,b]``.
A key that does not exist in the composed config is an error naming the key and the
known keys at that level, so a typo never silently does nothing.

Config files are checked the same way: every key of an experiment file and of each
component file it names must be known, or loading fails with one line naming the file,
the key and the closest known key. The known keys of a group are those of every file
shipped in ``configs/<group>/`` (a new key is declared by adding it there with its
default); ``heads.<task>`` and ``data.modalities.<name>`` options are checked by the
task and the modality that own them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from elo.config_files import (  # re-exported: the public names of the config API
    _load_yaml,
    _part,
    _unknown_key_message,
    check_keys,
    config_schema,
    configs_dir,
    deep_merge,
    load_part,
    resolve_config_path,
)
from elo.errors import ConfigError

__all__ = [
    "_load_yaml",
    "_unknown_key_message",
    "apply_overrides",
    "check_keys",
    "compose",
    "config_schema",
    "configs_dir",
    "deep_merge",
    "load_config",
    "load_part",
    "merge_checked",
    "parse_override",
    "require",
    "resolve_config_path",
]


def merge_checked(base: dict[str, Any], top: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Like :func:`deep_merge` but every key of ``top`` must already exist in ``base``."""
    for k, v in top.items():
        if k not in base:
            raise ConfigError(_unknown_key_message(f"{where}.{k}" if where else k, k, base))
        if isinstance(v, Mapping) and isinstance(base[k], dict) and base[k]:
            base = {**base, k: merge_checked(base[k], v, f"{where}.{k}" if where else k)}
        else:
            base = {**base, k: copy.deepcopy(v)}
    return base


def compose(
    path: Path, _seen: tuple[Path, ...] = (), sources: dict[str, Path] | None = None
) -> dict[str, Any]:
    """Load an experiment file and the component files its ``defaults`` names; in an
    experiment (a file with ``defaults``), every key must be known (:func:`check_keys`).
    ``sources`` receives, per top-level key, the file that set it last (error messages
    name it)."""
    if path in _seen:
        raise ConfigError(f"config cycle: {' -> '.join(map(str, (*_seen, path)))}")
    raw = _load_yaml(path)
    defaults = raw.pop("defaults", {}) or {}
    if not isinstance(defaults, Mapping):
        raise ConfigError(f"{path}: 'defaults' must map group -> file name, e.g. data: demo")
    out: dict[str, Any] = {}
    for group, name in defaults.items():
        if group == "base":  # another experiment file
            base = resolve_config_path(name, "experiment")
            out = deep_merge(out, compose(base, (*_seen, path), sources))
            continue
        part_path = resolve_config_path(name, group)
        out[group] = deep_merge(out.get(group, {}), _part(part_path, group, check=True))
        if sources is not None:
            sources[group] = part_path
    if defaults:
        check_keys(raw, path)
    if sources is not None:  # a group's own file first: it declares the group's keys
        for key in raw:
            sources.setdefault(key, path)
    return deep_merge(out, raw)


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value, e.g. train.steps=100")
    key, _, value = text.partition("=")
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"override {text!r}: empty key part in {key!r}")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        parsed = value
    if isinstance(parsed, str):  # YAML 1.1 reads "3e-4" as a string
        try:
            parsed = float(parsed)
        except ValueError:
            pass
    return parts, parsed


def apply_overrides(cfg: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``key=value`` strings; every key must exist already."""
    cfg = copy.deepcopy(cfg)
    for text in overrides:
        parts, value = parse_override(text)
        node: Any = cfg
        for i, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                level = node if isinstance(node, dict) else {}
                raise ConfigError(_unknown_key_message(".".join(parts[: i + 1]), part, level))
            if i == len(parts) - 1:
                node[part] = value
            else:
                node = node[part]
    return cfg


def load_config(
    name: str | Path = "demo",
    overrides: Iterable[str] = (),
    *,
    sources: dict[str, Path] | None = None,
) -> dict[str, Any]:
    """Compose an experiment config (a name in ``configs/experiment`` or a path); every
    key of every file must be known (:func:`check_keys`), every key the code reads
    present and every number in its range (:func:`elo.config_values.check_config`).
    ``sources`` receives the file each top-level key came from."""
    from elo.config_values import check_config

    path = resolve_config_path(name)
    sources = {} if sources is None else sources
    cfg = compose(path, sources=sources)
    check_keys(cfg, path)
    cfg = apply_overrides(cfg, overrides)
    check_config(cfg, sources)
    return cfg


def require(cfg: Mapping[str, Any], dotted: str, kind: type | tuple[type, ...]) -> Any:
    """Fetch ``a.b.c`` from ``cfg`` checking its type; errors name the key."""
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise ConfigError(f"missing config key {dotted!r}")
        node = node[part]
    if kind is float and isinstance(node, int) and not isinstance(node, bool):
        node = float(node)
    if not isinstance(node, kind) or (isinstance(node, bool) and kind in (int, float)):
        want = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ConfigError(f"config key {dotted!r} must be {want}, got {node!r}")
    return node
