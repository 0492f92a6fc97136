"""The files of ``configs/``: where they are, how one is read (safe YAML, one-line
errors), how a component file builds on its base (``defaults: {base: NAME}``), and
which keys each group knows (:func:`check_keys`). :mod:`elo.config` composes
experiments from them; :mod:`elo.config_values` checks what they hold.
"""

from __future__ import annotations

import copy
import difflib
import functools
import importlib.resources
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from elo.errors import ConfigError


def configs_dir() -> Path:
    """The ``configs/`` folder, from an editable install or an installed wheel."""
    root = importlib.resources.files("elo.configs")
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


def _unknown_key_message(full: str, key: str, level: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(key, list(level), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    known = ", ".join(sorted(level)) or "(none)"
    return f"unknown config key {full!r}{hint}; known keys here: {known}"


#: groups whose files are whole configs of their own, not sections of an experiment
_STANDALONE_GROUPS = ("experiment", "baseline")
#: top-level experiment keys that are not a component group
_TOP_LEVEL = ("seed", "heads")
#: levels whose keys are checked by their owner (a task's head, a modality's params);
#: ``*`` matches any key at that position
_OWNED_ELSEWHERE = (("heads",), ("data", "modalities", "*"))
#: builder options that the shipped model files leave at their defaults
_EXTRA_KEYS = {("model", "*"): ("in_channels", "stem_kernel")}


def _union(into: dict[str, Any], top: Mapping[str, Any]) -> None:
    for k, v in top.items():
        if isinstance(v, Mapping):
            sub = into.get(k)
            if not isinstance(sub, dict):
                sub = into[k] = {}
            _union(sub, v)
        else:
            into.setdefault(k, None)


@functools.cache
def _schema_for(root: str) -> dict[str, Any]:
    schema: dict[str, Any] = {k: None for k in _TOP_LEVEL}
    for group_dir in sorted(Path(root).iterdir()):
        if not group_dir.is_dir() or group_dir.name in _STANDALONE_GROUPS:
            continue
        if group_dir.name.startswith(("_", ".")):
            continue
        section: dict[str, Any] = {}
        for f in sorted(group_dir.glob("*.yaml")):
            _union(section, _part(f, group_dir.name, check=False))
        schema[group_dir.name] = section
    return schema


def config_schema() -> dict[str, Any]:
    """Every known experiment key: a nested mapping (``None`` marks a leaf)."""
    return _schema_for(str(configs_dir()))


def _matches(path: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    return len(path) == len(pattern) and all(
        p in ("*", q) for p, q in zip(pattern, path, strict=True)
    )


def check_keys(doc: Mapping[str, Any], file: Path | str, prefix: tuple[str, ...] = ()) -> None:
    """Every key of ``doc`` (an experiment, or the ``prefix`` section of one) must be
    known; else one line naming ``file``, the dotted key and the closest known key."""
    schema: Any = config_schema()
    for part in prefix:
        schema = schema.get(part) if isinstance(schema, dict) else None
    _check_level(doc, schema, prefix, file)


def _check_level(
    doc: Mapping[str, Any], schema: Any, path: tuple[str, ...], file: Path | str
) -> None:
    if any(_matches(path, pat) for pat in _OWNED_ELSEWHERE) or not isinstance(schema, dict):
        return
    known = dict(schema)
    for pat, extra in _EXTRA_KEYS.items():
        if _matches(path, pat):
            known.update(dict.fromkeys(extra))
    for k, v in doc.items():
        if k == "defaults" and not path:
            continue
        key = str(k)
        if key not in known:
            raise ConfigError(
                f"{file}: " + _unknown_key_message(".".join((*path, key)), key, known)
            )
        if isinstance(v, Mapping):
            _check_level(v, known[key], (*path, key), file)


def _part(path: Path, group: str, *, check: bool, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A component file of ``configs/<group>/`` over the file of the same group that its
    ``defaults: {base: NAME}`` names, so a file states only how it differs from its base
    (configs/search/ga.yaml); with ``check``, every key must be known (:func:`check_keys`)."""
    if path in _seen:
        raise ConfigError(f"config cycle: {' -> '.join(map(str, (*_seen, path)))}")
    raw = _load_yaml(path)
    defaults = raw.pop("defaults", None)
    out: dict[str, Any] = {}
    if defaults is not None:
        if not isinstance(defaults, Mapping) or set(defaults) != {"base"}:
            raise ConfigError(
                f"{path}: the 'defaults' of a {group} file names its base only, "
                "e.g. defaults: {base: base}"
            )
        base = resolve_config_path(str(defaults["base"]), group)
        out = _part(base, group, check=check, _seen=(*_seen, path))
    if check and not plugin_fitness(group, {**out, **raw}):
        check_keys(raw, path, (group,))
    return deep_merge(out, raw)


def plugin_fitness(group: str, section: Mapping[str, Any]) -> bool:
    """Whether ``section`` is a fitness of a kind without a file in configs/fitness/ (a
    plug-in's, docs/configuration.md): its class checks its keys when it is built
    (search/fitness/base.py), not the shipped files."""
    kind = section.get("kind") if group == "fitness" else None
    return isinstance(kind, str) and not (configs_dir() / "fitness" / f"{kind}.yaml").is_file()


def load_part(group: str, name: str | Path) -> dict[str, Any]:
    """The component ``name`` of ``configs/<group>/`` (a name or a path) over its base,
    keys checked: what an experiment's ``defaults: {<group>: name}`` places under
    ``<group>``."""
    return _part(resolve_config_path(name, group), group, check=True)
