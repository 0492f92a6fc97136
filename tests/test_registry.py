"""The generic registry: registration, lookup errors, globbing, discovery, plug-ins."""

from __future__ import annotations

import importlib
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

import elo.tasks as tasks_pkg
from elo.errors import ConfigError
from elo.model.heads import TASKS
from elo.registry import Registry


def test_register_get_list_build() -> None:
    reg: Registry[type] = Registry("widget")

    @reg.register("spinner")
    class Spinner:
        def __init__(self, n: int) -> None:
            self.n = n

    @reg.register()
    class Gear:
        name = "gear"

    assert reg.get("spinner") is Spinner
    assert reg.list() == ["gear", "spinner"]
    assert reg.list("sp*") == ["spinner"]
    assert reg.build("spinner", 3).n == 3
    assert "gear" in reg and "cog" not in reg


def test_unknown_name_lists_known() -> None:
    reg: Registry[type] = Registry("widget")
    reg.register("alpha")(type("A", (), {}))
    reg.register("beta")(type("B", (), {}))
    with pytest.raises(ConfigError, match=r"unknown widget 'gamma'; known: alpha, beta"):
        reg.get("gamma")


def test_duplicate_name_is_an_error() -> None:
    reg: Registry[type] = Registry("widget")
    reg.register("x")(type("First", (), {}))
    with pytest.raises(ConfigError, match=r"duplicate widget name 'x'.*First.*Second"):
        reg.register("x")(type("Second", (), {}))


def test_discovers_a_task_file_dropped_into_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A module dropped into the ``tasks`` package is discovered; the drop folder is a
    temporary folder joined to the package's path, so the source tree is never written
    (a killed test leaves no junk task for every later command to import)."""
    mod = f"tmp_speed_{uuid.uuid4().hex[:8]}"
    drop = tmp_path / "tasks"
    drop.mkdir()
    (drop / f"{mod}.py").write_text(
        textwrap.dedent(
            f"""
            from elo.model.heads import TASKS, TaskHead

            @TASKS.register()
            class SpeedHead(TaskHead):
                name = "{mod}"
            """
        )
    )
    (drop / f"_{mod}.py").write_text(
        "raise RuntimeError('machinery modules must not be imported')\n"
    )
    monkeypatch.setattr(tasks_pkg, "__path__", [*tasks_pkg.__path__, str(drop)])
    try:
        importlib.invalidate_caches()
        TASKS.discover(force=True)
        assert mod in TASKS.list()
        assert TASKS.get(mod).__name__ == "SpeedHead"
        assert TASKS.origin(mod) == f"elo.tasks.{mod}.SpeedHead"
    finally:
        TASKS.remove(mod)
        sys.modules.pop(f"elo.tasks.{mod}", None)


def test_entry_point_plugin_registers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"plug_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}_pkg.py").write_text(
        textwrap.dedent(
            f"""
            from elo.model.heads import TASKS, TaskHead

            @TASKS.register()
            class PluginHead(TaskHead):
                name = "{name}"
            """
        )
    )
    dist = tmp_path / f"{name}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[elo.tasks]\n{name} = {name}_pkg\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    try:
        TASKS.discover(force=True)
        assert name in TASKS.list()
        assert TASKS.get(name).__module__ == f"{name}_pkg"
    finally:
        TASKS.remove(name)
        sys.modules.pop(f"{name}_pkg", None)


def test_broken_plugin_is_skipped_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    name = f"broken_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}_pkg.py").write_text("raise ImportError('missing dependency foo')\n")
    dist = tmp_path / f"{name}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[elo.tasks]\n{name} = {name}_pkg\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    TASKS.discover(force=True)
    assert name not in TASKS.list()
    assert "missing dependency foo" in caplog.text


def test_baseline_heads_join_through_their_entry_points(tmp_path: Path) -> None:
    """Core never names ``baselines``: the BYOL / SimSiam heads (and their views) join
    through the ``elo.tasks`` entry points pyproject.toml declares. A fresh interpreter
    loads exactly that table from a throwaway dist-info, so the check holds whether or
    not the installed metadata is current."""
    import json
    import os
    import subprocess
    import tomllib

    repo = Path(__file__).resolve().parents[1]
    table = tomllib.loads((repo / "pyproject.toml").read_text())["project"]["entry-points"]
    eps = table["elo.tasks"]
    assert eps == {"byol": "elo.baselines.byol", "simsiam": "elo.baselines.simsiam"}
    dist = tmp_path / "elo_baselines_check-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: elo-baselines-check\nVersion: 0.1\n"
    )
    (dist / "entry_points.txt").write_text(
        "[elo.tasks]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items())
    )
    code = textwrap.dedent(
        """
        import json, sys
        from elo.model.heads import TASKS, VIEWS
        assert TASKS.packages == ("elo.tasks",) and VIEWS.packages == ()
        before = sorted(m for m in sys.modules if m.split(".")[0] == "baselines")
        TASKS.discover()
        print(json.dumps({"before": before, "tasks": TASKS.list(), "views": VIEWS.list(),
                          "byol": TASKS.origin("byol")}))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(repo)])}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["before"] == []  # importing the core and its registries imports no baseline
    assert {"byol", "simsiam", "reconstruction", "distill"} <= set(got["tasks"])
    assert {"byol1", "byol2", "simsiam1", "simsiam2", "order", "past"} <= set(got["views"])
    assert got["byol"] == "elo.baselines.byol.BYOLHead"
