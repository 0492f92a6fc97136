"""The tests test the code of their own checkout. The console scripts they start must
import ``elo`` from this tree, not from another clone that shares the venv (CI shares
the dependencies between clones: .ci/run, the Makefile's ``overlay`` target)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("elo-train", "elo-search", "elo-eval", "elo-extract", "elo-data")

#: run a console-script file as Python runs a script (its folder first on sys.path)
#: with --help, then say which files the command's modules came from
PROBE = """
import runpy, sys
script = sys.argv[1]
sys.argv = [script, "--help"]
sys.path[0] = sys.argv[0].rsplit("/", 1)[0]
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit:
    pass
print("FILES", *(m.__file__ for n, m in sorted(sys.modules.items()) if n.startswith("elo.")))
"""


def _modules_of(script: Path, cwd: Path) -> list[Path]:
    """The files of the ``elo`` modules ``script`` imports for ``--help``, run by the
    interpreter of its ``#!`` line from ``cwd`` with no PYTHONPATH."""
    interpreter = script.read_text(encoding="utf-8").splitlines()[0].removeprefix("#!").strip()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [interpreter, "-c", PROBE, str(script)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("FILES "))
    return [Path(f).resolve() for f in line.split()[1:]]


def test_console_scripts_import_this_checkout(tmp_path: Path) -> None:
    """Each console script of the venv running the tests, started outside the tree,
    imports its command from this checkout."""
    bindir = Path(sys.executable).parent
    for name in COMMANDS:
        script = bindir / name
        assert script.is_file(), f"{script}: the venv under test has no {name}"
        files = _modules_of(script, tmp_path)
        assert ROOT / "elo" / "cli.py" in files, (name, files)
        outside = [f for f in files if not f.is_relative_to(ROOT)]
        assert not outside, f"{name} imports elo from another tree: {outside}"


@pytest.mark.slow
def test_two_checkouts_over_one_dependency_venv_each_run_their_own_code(
    tmp_path: Path,
) -> None:
    """``make overlay`` (what .ci/run does) in a copy of this tree, over a dependency
        venv that also sees this checkout's install: the copy's console scripts import the
        copy, and this tree's import this tree; a dependency's command (``ray``) runs under
    the overlay's python. Measured: about 8 s, most of it pip."""
    clone = tmp_path / "clone"
    skip_top = {".git", "data", "runs", "cache", "build", "dist"}  # the tree's outputs

    def ignore(folder: str, names: list[str]) -> set[str]:
        top = Path(folder) == ROOT
        return {
            n
            for n in names
            if n == "__pycache__"
            or n.startswith(".venv")
            or n.endswith(("_cache", ".egg-info"))
            or (top and n in skip_top)
        }

    shutil.copytree(ROOT, clone, symlinks=True, ignore=ignore)
    deps = tmp_path / "deps"  # stands for the shared venv: the pins' stamp, no install
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(deps)], check=True)
    site = next((deps / "lib").glob("python*/site-packages"))
    ours = [p for p in sys.path if p.endswith("site-packages")]
    (site / "elo_deps.pth").write_text(
        "".join(f"import site; site.addsitedir({p!r})\n" for p in ours)
    )
    for tool in ("ruff", "mypy"):
        (deps / "bin" / tool).symlink_to(shutil.which(tool) or sys.executable)
    (deps / "bin" / "zz-tool").write_text(f"#!{deps}/bin/python\nprint('tool')\n")
    (deps / "bin" / "zz-tool").chmod(0o755)  # a dependency's command, e.g. ray
    key = _make_out(clone, "deps-key")
    (deps / ".elo-deps-stamp").write_text(key)
    venv = clone / ".venv-ci"
    proc = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "overlay",
            f"VENV={venv}",
            f"DEPS_VENV={deps}",
            f"PYTHON={sys.executable}",
        ],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0 and "No matching distribution" in proc.stderr:
        pytest.skip("the build backend (setuptools) cannot be fetched from a package index")
    assert proc.returncode == 0, proc.stderr[-2000:]
    files = _modules_of(venv / "bin" / "elo-train", tmp_path)
    assert clone.resolve() / "elo" / "cli.py" in files, files
    assert all(f.is_relative_to(clone.resolve()) for f in files), files
    here = _modules_of(Path(sys.executable).parent / "elo-train", tmp_path)
    assert ROOT / "elo" / "cli.py" in here
    pins = subprocess.run(
        "cat pyproject.toml constraints.txt | sha256sum | cut -c1-16",
        shell=True,
        cwd=clone,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert (venv / ".elo-install-stamp").read_text().startswith(pins.strip() + ":")
    assert "dependencies in" not in proc.stdout  # the stamped deps venv was reused
    # a dependency's command runs with the overlay's python: what it starts (Ray's
    # workers) imports the checkout too
    tool = (venv / "bin" / "zz-tool").read_text().splitlines()
    assert tool == [f"#!{venv}/bin/python", "print('tool')"]
    ran = subprocess.run([str(venv / "bin" / "zz-tool")], capture_output=True, text=True)
    assert ran.stdout == "tool\n"


def _make_out(cwd: Path, target: str) -> str:
    proc = subprocess.run(
        ["make", "-s", "--no-print-directory", target, f"PYTHON={sys.executable}"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.strip()


def test_the_dependency_venv_key_follows_dependencies_and_pins_only(tmp_path: Path) -> None:
    """A tool setting in pyproject.toml keeps the shared venv's key (.ci/deps_key.py); a
    dependency range or a pin changes it. CI keys its venv by it (.ci/run)."""
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    for name in ("Makefile", "pyproject.toml", "constraints.txt", ".ci/deps_key.py"):
        shutil.copy(ROOT / name, repo / name)
    key = _make_out(repo, "deps-key")
    assert len(key) == 16 and int(key, 16) >= 0
    pyproject = repo / "pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(text.replace("max-complexity = 12", "max-complexity = 11"))
    assert pyproject.read_text() != text and _make_out(repo, "deps-key") == key
    pyproject.write_text(text.replace('"deap>=1.4,<2"', '"deap>=1.4,<3"'))
    assert pyproject.read_text() != text and _make_out(repo, "deps-key") != key
    pyproject.write_text(text)
    pins = repo / "constraints.txt"
    pins.write_text(pins.read_text() + "zz-extra==1.0\n")
    assert _make_out(repo, "deps-key") != key
