"""Packaging: compatible ranges in pyproject.toml, exact pins in constraints.txt that
satisfy them, one OpenCV wheel (core; TV-L1 refuses with the fix when contrib is
absent), a built wheel that ships every sub-package and config and whose console
scripts point at functions it holds, and the wheel installed in a fresh venv running
each console script from outside the source tree."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
#: the repository's folders that are sub-packages of ``elo`` (links elo/<name> -> ../<name>)
MAPPED = ("tasks", "modalities", "search", "baselines", "configs")
PACKAGES = ("elo", *MAPPED)


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
    from elo.modalities import flow

    monkeypatch.setattr(flow, "_ESTIMATORS", {})
    if hasattr(cv2, "optflow"):  # this venv may hold contrib: hide it as core would
        monkeypatch.delattr(cv2, "optflow")
    with pytest.raises(DataError, match="tvl1 needs OpenCV contrib: pip uninstall"):
        flow._estimator("tvl1", "medium")
    assert flow._estimator("dis", "medium") is not None  # core has DIS


def _copy_source(dest: Path) -> Path:
    dest.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for pkg in PACKAGES:  # elo/'s links stay links, as in a git checkout
        shutil.copytree(ROOT / pkg, dest / pkg, ignore=ignore, symlinks=True)
    return dest


def _build_wheel(tmp_path: Path) -> tuple[Path, Path]:
    """The wheel built from a copy of the source (the tree stays untouched; ~7 s), and
    that copy."""
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
    return wheel, src


def _installed_name(rel: Path) -> str:
    """Where a source file lives in the installed package: ``tasks/x.py`` ->
    ``elo/tasks/x.py`` (the mapped folders are sub-packages of ``elo``)."""
    posix = rel.as_posix()
    return posix if rel.parts[0] == "elo" else f"elo/{posix}"


def _source_files(root: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """Installed name -> source file, for every file of :data:`PACKAGES` with one of
    ``suffixes`` (found on disk, not listed by hand; elo/'s links are not walked twice)."""
    out = {}
    for pkg in PACKAGES:
        for p in (root / pkg).rglob("*"):
            rel = p.relative_to(root)
            if pkg == "elo" and len(rel.parts) > 1 and rel.parts[1] in MAPPED:
                continue
            if p.suffix in suffixes and "__pycache__" not in p.parts:
                out[_installed_name(rel)] = p
    return out


def _subpackages(root: Path) -> set[str]:
    """Every package of the source tree, by its import name (``elo.tasks``, ...)."""
    return {
        name.removesuffix("/__init__.py").replace("/", ".")
        for name in _source_files(root, (".py",))
        if name.endswith("/__init__.py")
    }


def _scripts() -> dict[str, str]:
    return dict(_project()["scripts"])


def test_the_tree_has_the_subpackages_the_layout_promises() -> None:
    """The sub-packages of the layout (docs/architecture.md) exist (so the derived list
    is not empty)."""
    found = _subpackages(ROOT)
    want = {"elo.data", "elo.model", "elo.train", "elo.evaluation", "elo.commands"}
    assert want <= found, sorted(want - found)
    assert {"elo.search", "elo.baselines", "elo.tasks", "elo.modalities"} <= found


def test_wheel_ships_every_subpackage_and_config(tmp_path: Path) -> None:
    wheel, src = _build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    want = set(_source_files(src, (".py", ".yaml")))
    assert "elo/commands/eval.py" in want and "elo/configs/model/tiny.yaml" in want
    assert want <= names, f"missing from the wheel: {sorted(want - names)[:10]}"
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"elo"}, sorted(top)
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    requires = [
        ln.split(":", 1)[1].strip()
        for ln in zipfile.ZipFile(wheel).read(meta).decode().splitlines()
        if ln.startswith("Requires-Dist:") and "extra ==" not in ln
    ]
    assert {canonicalize_name(Requirement(r).name) for r in requires} == {
        canonicalize_name(r.name) for r in (Requirement(d) for d in _project()["dependencies"])
    }
    text = zipfile.ZipFile(wheel).read(meta).decode()
    import elo

    assert f"\nVersion: {elo.__version__}\n" in text  # the version's one source
    assert "\nLicense-Expression: Apache-2.0\n" in text
    (lic,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
    assert zipfile.ZipFile(wheel).read(lic) == (ROOT / "LICENSE").read_bytes()
    missing = {p for p in _subpackages(src) if f"{p.replace('.', '/')}/__init__.py" not in names}
    assert not missing, f"sub-packages missing from the wheel: {sorted(missing)}"
    entry = zipfile.ZipFile(wheel).read(meta.replace("METADATA", "entry_points.txt")).decode()
    scripts = _scripts()
    assert sorted(scripts) == ["elo-data", "elo-eval", "elo-extract", "elo-search", "elo-train"]
    for name, target in scripts.items():
        assert f"{name} = {target}" in entry, f"{name}: not {target} in the wheel's entry points"
        module, _, func = target.partition(":")
        path = module.replace(".", "/") + ".py"
        assert path in names, f"{name} -> {target}: {path} is not in the wheel"
        tree = ast.parse(zipfile.ZipFile(wheel).read(path).decode())
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert func in defined, f"{name} -> {target}: no function {func} in {path}"


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin") / "python"


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_runs_every_console_script(tmp_path: Path) -> None:
    """Install the built wheel (``--no-deps``) in a new venv that sees this environment's
    third-party packages, and run each console script with ``--help`` from a folder
    outside the source tree with no PYTHONPATH: the installed code answers, not the tree.
    Measured: 3-6 s on a shared 2-core machine, most of it the wheel build."""
    t0 = time.perf_counter()
    wheel, _ = _build_wheel(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
        check=True,
        timeout=300,
    )
    py = _venv_python(venv)
    site = Path(
        subprocess.run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    install = [sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q"]
    proc = subprocess.run(
        [*install, str(wheel)], capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    # Then this environment's packages (torch, yaml...) after the venv's own: a plain path
    # line, so a development install's finder there (pip install -e) is not activated. Added
    # after the install, so pip neither skips the wheel as already installed there nor
    # touches that environment.
    (site / "parent_env.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    where = subprocess.run(
        [str(py), "-c", "import elo.baselines, elo.search as s; print(elo.__file__, s.__file__)"],
        cwd=outside,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert all(Path(f).is_relative_to(venv) for f in where.split()), where
    bindir = py.parent
    for name in sorted(_scripts()):
        proc = subprocess.run(
            [str(bindir / name), "--help"],
            cwd=outside,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, f"{name} --help: {proc.stderr[-1500:]}"
        assert proc.stdout.startswith(f"usage: {name}"), proc.stdout[:200]
        assert "show this help message and exit" in proc.stdout
    print(f"fresh venv + wheel + five --help: {time.perf_counter() - t0:.1f} s")


def test_one_version_and_the_apache_license() -> None:
    """The version is written once, in elo/__init__.py: pyproject.toml reads it
    (dynamic) and the installed metadata agrees; LICENSE is the Apache-2.0 text that
    pyproject.toml declares."""
    import importlib.metadata
    import re

    import elo

    project = _project()
    assert "version" not in project and project["dynamic"] == ["version"]
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["dynamic"]["version"] == {"attr": "elo.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", elo.__version__)
    assert importlib.metadata.version("elo-search") == elo.__version__
    written = [
        p
        for p in ROOT.rglob("*.py")
        if ".venv" not in p.parts and re.search(r"^__version__\s*=", p.read_text("utf-8"), re.M)
    ]
    assert [p.relative_to(ROOT).as_posix() for p in written] == ["elo/__init__.py"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert project["license"] == "Apache-2.0"
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text and len(text.splitlines()) == 202
