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
"""

from __future__ import annotations

import copy
import difflib
import importlib.resources
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from elo.errors import ConfigError


def configs_dir() -> Path:
    """The ``configs/`` folder, from an editable install or an installed wheel."""
    root = importlib.resources.files("configs")
    return Path(str(root))


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def resolve_config_path(name: str | Path, group: str = "experiment") -> Path:
    """A path as given, or ``configs/<group>/<name>.yaml``."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    cand = configs_dir() / group / f"{name}.yaml"
    if cand.exists():
        return cand
    avail = sorted(q.stem for q in (configs_dir() / group).glob("*.yaml"))
    raise ConfigError(
        f"no config {str(name)!r} (looked for {p} and {cand}); "
        f"available {group} configs: {', '.join(avail) or '(none)'}"
    )


def deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``top`` merged into a copy of ``base``; nested mappings merge, others replace."""
    out = copy.deepcopy(base)
    for k, v in top.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


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


def _unknown_key_message(full: str, key: str, level: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(key, list(level), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    known = ", ".join(sorted(level)) or "(none)"
    return f"unknown config key {full!r}{hint}; known keys here: {known}"


def compose(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Load an experiment file and the component files its ``defaults`` names."""
    if path in _seen:
        raise ConfigError(f"config cycle: {' -> '.join(map(str, (*_seen, path)))}")
    raw = _load_yaml(path)
    defaults = raw.pop("defaults", {}) or {}
    if not isinstance(defaults, Mapping):
        raise ConfigError(f"{path}: 'defaults' must map group -> file name, e.g. data: demo")
    out: dict[str, Any] = {}
    for group, name in defaults.items():
        if group == "base":  # another experiment file
            out = deep_merge(out, compose(resolve_config_path(name, "experiment"), (*_seen, path)))
            continue
        out[group] = deep_merge(out.get(group, {}), _load_yaml(resolve_config_path(name, group)))
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


def load_config(name: str | Path = "demo", overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Compose an experiment config (a name in ``configs/experiment`` or a path)."""
    return apply_overrides(compose(resolve_config_path(name)), overrides)


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
