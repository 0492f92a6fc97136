"""Packaging: compatible ranges in pyproject.toml, exact pins in constraints.txt that
satisfy them, one OpenCV wheel (core; TV-L1 refuses with the fix when contrib is
absent), and a built wheel that ships every sub-package and config."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("elo", "tasks", "modalities", "search", "baselines", "configs")


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            specs = list(req.specifier)
            assert len(specs) == 1 and specs[0].operator == "==", f"not an exact pin: {line}"
            pins[canonicalize_name(req.name)] = specs[0].version
    return pins


def _requirements() -> list[Requirement]:
    project = _project()
    reqs = [Requirement(r) for r in project["dependencies"]]
    return reqs + [Requirement(r) for r in project["optional-dependencies"]["dev"]]


def test_dependencies_are_ranges_and_the_constraints_pin_each_inside_its_range() -> None:
    pins = _pins()
    for req in _requirements():
        assert not any(s.operator in ("==", "===") for s in req.specifier), f"exact pin: {req}"
        assert req.specifier, f"no version range: {req}"
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} has no pin in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]} outside {req.specifier}"
        )


def test_exactly_one_opencv_wheel_and_it_is_core() -> None:
    opencv = [n for n in _pins() if n.startswith("opencv")]
    assert opencv == ["opencv-python-headless"]
    deps = [canonicalize_name(r.name) for r in _requirements()]
    assert [n for n in deps if n.startswith("opencv")] == ["opencv-python-headless"]


def test_tvl1_without_opencv_contrib_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2

    from elo.errors import DataError
    from modalities import flow

    monkeypatch.setattr(flow, "_ESTIMATORS", {})
    if hasattr(cv2, "optflow"):  # this venv may hold contrib: hide it as core would
        monkeypatch.delattr(cv2, "optflow")
    with pytest.raises(DataError, match="tvl1 needs OpenCV contrib: pip uninstall"):
        flow._estimator("tvl1", "medium")
    assert flow._estimator("dis", "medium") is not None  # core has DIS


def _copy_source(dest: Path) -> Path:
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, dest / pkg, ignore=ignore)
    return dest


def test_wheel_ships_every_subpackage_and_config(tmp_path: Path) -> None:
    """Builds the wheel from a copy of the source (the tree stays untouched; ~7 s)."""
    src = _copy_source(tmp_path / "src")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0 and "No matching distribution" in proc.stderr:
        pytest.skip("the build backend (setuptools) cannot be fetched from a package index")
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("elo_search-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    want = {
        p.relative_to(src).as_posix()
        for pkg in PACKAGES
        for p in (src / pkg).rglob("*")
        if p.suffix in (".py", ".yaml") and "__pycache__" not in p.parts
    }
    assert "elo/commands/eval.py" in want and "configs/model/tiny.yaml" in want
    assert want <= names, f"missing from the wheel: {sorted(want - names)[:10]}"
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    requires = [
        ln.split(":", 1)[1].strip()
        for ln in zipfile.ZipFile(wheel).read(meta).decode().splitlines()
        if ln.startswith("Requires-Dist:") and "extra ==" not in ln
    ]
    assert {canonicalize_name(Requirement(r).name) for r in requires} == {
        canonicalize_name(r.name) for r in (Requirement(d) for d in _project()["dependencies"])
    }
    entry = zipfile.ZipFile(wheel).read(meta.replace("METADATA", "entry_points.txt")).decode()
    assert "elo-eval = elo.cli:eval_main" in entry
