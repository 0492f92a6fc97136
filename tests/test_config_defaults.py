"""Every default lives in the YAML of configs/: each config file loads, each key the
code reads is declared there (a config that lacks one is refused with a line naming
its file, never filled in), and the code keeps no Python copy of the YAML."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from elo.config import configs_dir, load_config, load_part
from elo.config_values import COMPLETE_GROUPS, OPTIONAL, check_complete
from elo.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
GROUPS = sorted(
    p.name for p in configs_dir().iterdir() if p.is_dir() and p.name not in ("__pycache__",)
)
EXPERIMENTS = sorted(p.stem for p in (configs_dir() / "experiment").glob("*.yaml"))
#: the library's folders (elo/ holds links to the others)
CODE = ("elo", "tasks", "modalities", "search", "baselines")


def _component_files() -> list[tuple[str, Path]]:
    skip = ("experiment", "baseline")
    return [
        (g, f) for g in GROUPS if g not in skip for f in sorted((configs_dir() / g).glob("*.yaml"))
    ]


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_loads_complete(name: str) -> None:
    cfg = load_config(name)
    check_complete(cfg, name)  # what load_config checked, again explicitly
    for group in COMPLETE_GROUPS:
        assert isinstance(cfg[group], dict) and cfg[group]


@pytest.mark.parametrize(("group", "path"), _component_files(), ids=lambda x: str(x))
def test_every_component_file_loads_and_every_experiment_takes_it(group: str, path: Path) -> None:
    """Each file of configs/<group>/ composes (keys known, base found) and, placed in
    the demo experiment, passes every check of a loaded config."""
    part = load_part(group, path)
    assert part
    from elo.config_values import check_config

    cfg = load_config("demo")
    cfg[group] = part
    check_config(cfg, path)


def test_baseline_files_load() -> None:
    from elo.baselines.trainer import load_baseline_config

    for path in sorted((configs_dir() / "baseline").glob("*.yaml")):
        cfg = load_baseline_config(path.stem)
        assert cfg["objective"] == path.stem


def test_ga_states_only_how_it_differs_from_the_search_base() -> None:
    base = load_part("search", "base")
    for name, strategy in (("cma", "cma"), ("ga", "ga")):
        raw = yaml.safe_load((configs_dir() / "search" / f"{name}.yaml").read_text())
        assert raw == {"defaults": {"base": "base"}, "strategy": strategy}
        assert load_part("search", name) == {**base, "strategy": strategy}


def test_settings_read_exactly_the_keys_the_yaml_declares() -> None:
    """The typed settings' fields are the keys of configs/train/*.yaml and
    configs/search/base.yaml; each fitness kind's file holds every argument of its
    class; every experiment carries them all."""
    from elo.search.fitness import FITNESSES
    from elo.search.settings import SearchSettings
    from elo.train.settings import TrainSettings

    train_fields = {f.name for f in dataclasses.fields(TrainSettings)}
    for path in sorted((configs_dir() / "train").glob("*.yaml")):
        assert set(load_part("train", path)) == train_fields, path
    search_fields = {f.name for f in dataclasses.fields(SearchSettings)}
    assert set(load_part("search", "base")) == search_fields
    for kind in FITNESSES.list():
        cls = FITNESSES.get(kind)
        if not cls.__module__.startswith("elo.search.fitness."):
            continue  # the suite's fault plug-ins (tests/plugins/) ship no configs/ file
        args = {f.name for f in dataclasses.fields(cls) if f.init}
        assert set(load_part("fitness", kind)) - {"kind"} == args, kind
    for name in EXPERIMENTS:
        cfg = load_config(name)
        assert set(cfg["train"]) == train_fields and set(cfg["search"]) == search_fields
        assert TrainSettings.from_config(cfg).steps == cfg["train"]["steps"]
        assert SearchSettings.from_config(cfg).population == cfg["search"]["population"]


def _leaf_keys(doc: dict[str, Any], pre: str) -> list[str]:
    out: list[str] = []
    for k, v in doc.items():
        key = f"{pre}.{k}"
        if any(key == o or key.startswith(f"{o}.") for o in OPTIONAL):
            continue
        out += _leaf_keys(v, key) if isinstance(v, dict) and v else [key]
    return out


def _required_keys() -> list[tuple[str, str]]:
    """(group, dotted key) of every key a config of a complete group must hold."""
    out = []
    for group in COMPLETE_GROUPS:
        keys = {
            k
            for path in sorted((configs_dir() / group).glob("*.yaml"))
            for k in _leaf_keys(load_part(group, path), group)
        }
        out += [(group, k) for k in sorted(keys)]
    for path in sorted((configs_dir() / "fitness").glob("*.yaml")):
        out += [(f"fitness:{path.stem}", f"fitness.{k}") for k in load_part("fitness", path)]
    return out


@pytest.mark.parametrize(("group", "key"), _required_keys(), ids=lambda x: str(x))
def test_a_file_that_lacks_a_key_is_refused_naming_the_file(
    tmp_path: Path, group: str, key: str
) -> None:
    """A component file without one of the keys is refused at load with one line that
    names the file and the key: the code never falls back to a value of its own."""
    group, _, name = group.partition(":")
    shipped = {"search": "cma", "train": "proxy", "data": "demo", "objective": "default"}
    part = load_part(group, name or shipped[group])
    node = part
    parts = key.split(".")[1:]
    for p in parts[:-1]:
        node = node[p]
    del node[parts[-1]]
    part_file = tmp_path / f"{group}.yaml"
    part_file.write_text(yaml.safe_dump(part))
    demo = yaml.safe_load((configs_dir() / "experiment" / "demo.yaml").read_text())
    defaults = {**demo["defaults"], group: str(part_file)}  # the demo's files, one short
    exp = tmp_path / "exp.yaml"
    exp.write_text(yaml.safe_dump({"defaults": defaults}))
    with pytest.raises(ConfigError) as err:
        load_config(exp)
    msg = str(err.value)
    assert str(part_file) in msg and f"missing config key '{key}'" in msg, msg
    assert "\n" not in msg


#: calls of ``.get("key", default)`` in library code whose key is also a config key
#: name but that read something else (a run's records, a trial's report)
NOT_CONFIG_READS = {
    ("search/report.py", "rungs"),  # a rung record's list of rung fitness values
    ("search/report.py", "rung"),
    ("search/report.py", "seconds"),  # an evaluation record's duration
}


def _config_key_names() -> set[str]:
    from elo.config_values import shipped_leaves

    return {key.rsplit(".", 1)[-1] for _, key, _ in shipped_leaves()}


def test_no_python_copy_of_the_yaml_defaults() -> None:
    """No ``*_DEFAULTS`` table and no ``.get("<config key>", <constant>)`` fallback in
    the library: the YAML is the only place a default is written."""
    names = _config_key_names()
    mirrors, fallbacks = [], []
    for pkg in CODE:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            if pkg == "elo" and path.relative_to(ROOT / "elo").parts[0] in CODE:
                continue
            text = path.read_text(encoding="utf-8")
            if re.search(r"^[A-Z_]*_DEFAULTS\b\s*[:=]", text, flags=re.M):
                mirrors.append(rel)
            for node in ast.walk(ast.parse(text)):
                if not (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "get"
                    and len(node.args) == 2
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[1], ast.Constant | ast.List | ast.Dict | ast.Tuple)
                ):
                    continue
                key = node.args[0].value
                if key in names and (rel, key) not in NOT_CONFIG_READS:
                    fallbacks.append(f"{rel}:{node.lineno} .get({key!r}, ...)")
    assert not mirrors, mirrors
    assert not fallbacks, fallbacks


def test_fitness_classes_default_to_their_yaml_values() -> None:
    """The fitness classes keep keyword defaults for use from Python (tests, notebooks,
    benchmarks); a search builds them from the YAML with every key given. The two agree
    value for value, so a class built without arguments scores as the config's would
    (``seed``: null in the YAML is the experiment's seed, 0 in Python)."""
    from elo.search.fitness import FITNESSES

    def plain(v: Any) -> Any:
        return list(v) if isinstance(v, tuple) else v

    for kind in FITNESSES.list():
        if not FITNESSES.get(kind).__module__.startswith("elo.search.fitness."):
            continue  # the suite's fault plug-ins (tests/plugins/) ship no configs/ file
        yaml_values = load_part("fitness", kind)
        for f in dataclasses.fields(FITNESSES.get(kind)):
            if f.init and f.name != "seed":
                assert f.default is not dataclasses.MISSING, (kind, f.name)
                assert plain(f.default) == yaml_values[f.name], (kind, f.name)
