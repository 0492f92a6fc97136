"""benchmarks/bench_demo.py without training: the table of finished demo runs (mean ± sd
per row over seeds, the search row's paired differences), the reuse of a finished seed,
and the refusals (other options for an existing bench folder, options it sets itself)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_demo.py"

#: action top-1 per seed (0, 1, 2) of each row
TOP1 = {
    "random": (0.20, 0.18, 0.22),
    "uniform": (0.30, 0.32, 0.31),
    "single": (0.26, 0.35, 0.24),
    "evolved": (0.34, 0.30, 0.33),
}
NAMES = {"random": "random init", "uniform": "uniform λ", "evolved": "evolved λ (ELo)"}


def _comparison(seed: int, argv: list[str] | None = None) -> dict[str, Any]:
    rows = []
    for key, values in TOP1.items():
        res = {"top1": values[seed], "balanced_accuracy": values[seed]}
        row = {"key": key, "model": NAMES.get(key, ""), "label": res, "identity": {"top1": 0.1}}
        if key == "single":
            task = ("future", "contrastive", "future")[seed]
            row.update(model=f"best single task by fitness ({task})", task=task)
        rows.append({**row, "seconds": 10.0, "reused": key == "random"})
    return {
        "date": f"2030-01-0{seed + 1}T00:00:00+00:00",
        "machine": {"cores": 2, "cpu": "x", "load": [1.0, 1.0, 1.0], "load_end": [2.0, 1.5, 1.0]},
        "seed": seed,
        "style": "c",
        "final_steps": 300,
        "jobs": 2,
        "search_args": [],
        "seconds": {"data": 60.0, "search": 420.0, "rows": 1200.0, "total": 1680.0},
        "argv": argv or [],
        "rows": rows,
    }


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=120
    )


def _write(folder: Path, comparison: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "comparison.json").write_text(json.dumps(comparison))


def test_table_means_sds_and_paired_differences(tmp_path: Path) -> None:
    for seed in (2, 0, 1):  # written out of order: the table is by seed
        _write(tmp_path / "style-c" / f"seed-{seed}", _comparison(seed))
    proc = _bench("--table-from", str(tmp_path / "style-c"))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert f"## {tmp_path / 'style-c'}: style c, seeds 0 1 2, 300 steps per model" in out
    # uniform: mean 0.31, sample sd 0.01; evolved: 0.3233, sd 0.0208
    assert "| uniform λ | 0.310 ± 0.010 | 0.300 0.320 0.310 | 0.100 |  |" in out
    assert "| evolved λ (ELo) | 0.323 ± 0.021 | 0.340 0.300 0.330 |" in out
    # the single task's name loses the seed's pick, which moves to its own column
    assert "| best single task by fitness | 0.283 ± 0.059 | 0.260 0.350 0.240 | 0.100 | " in out
    assert "future contrastive future |" in out
    # evolved - uniform: +0.04, -0.02, +0.02: mean +0.013, sd 0.031, 2 wins of 3
    assert "| uniform λ | +0.040 (win) -0.020 (loss) +0.020 (win) | +0.013 ± 0.031 | 2/3 |" in out
    assert "+0.080 (win) -0.050 (loss) +0.090 (win) | +0.040 ± 0.078 | 2/3 |" in out
    assert (
        "Search row mean above: uniform λ, best single task by fitness; not above: none; "
        "beats uniform λ in every seed: no." in out
    )
    assert "* seed 1: 2030-01-02T00:00:00+00:00, 2 cores, load [1.0, 1.0, 1.0] -> " in out
    assert "28.0 min (search 7.0), rows 2 at a time; 1 of 4 rows reused" in out


def test_table_from_a_single_demo_run_and_missing_folders(tmp_path: Path) -> None:
    _write(tmp_path / "run", _comparison(0))
    proc = _bench("--table-from", str(tmp_path / "run"))
    assert proc.returncode == 0 and "| random init | 0.200 (n = 1) | 0.200 |" in proc.stdout
    assert "+0.040 (win) | +0.040 (n = 1) | 1/1 |" in proc.stdout
    assert "beats uniform λ in every seed: yes." in proc.stdout
    proc = _bench("--table-from", str(tmp_path / "run"), str(tmp_path / "nothing"))
    assert proc.returncode == 2
    assert f"no comparison.json in {tmp_path / 'nothing'}" in proc.stderr


def test_a_finished_seed_is_reused_without_running_the_driver(tmp_path: Path) -> None:
    runs, data = tmp_path / "runs", tmp_path / "data"
    demo_opts = ["--population", "4", "--final-steps", "10"]
    argv = [
        "--data",
        str(data / "style-a-seed-0-clips-200"),
        "--run",
        str(runs / "seed-0"),
        "--seed",
        "0",
        "--style",
        "a",
        "--clips",
        "200",
        *demo_opts,
    ]
    _write(runs / "seed-0", _comparison(0, argv))
    proc = _bench(
        "--style",
        "a",
        "--seeds",
        "0",
        "--data",
        str(data),
        "--runs",
        str(runs),
        "--clips",
        "200",
        *demo_opts,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"seed 0 finished ({runs / 'seed-0' / 'comparison.json'}), reused" in proc.stdout
    assert not data.exists()  # no dataset made, no driver run
    assert "| evolved λ (ELo) | 0.340 (n = 1) |" in (runs / "table.md").read_text()
    recorded = json.loads((runs / "bench_demo.json").read_text())
    assert recorded == {
        "style": "a",
        "demo_args": ["--clips", "200", *demo_opts],
        "search_args": [],
    }

    # the same folder with other driver options: refused before anything runs
    proc = _bench("--style", "a", "--seeds", "0", "--runs", str(runs), "--final-steps", "20")
    assert proc.returncode == 2
    assert (
        f"{runs / 'bench_demo.json'} was made with" in proc.stderr
        and "another --runs" in proc.stderr
    )


def test_options_it_sets_itself_and_bad_driver_options_exit_2(tmp_path: Path) -> None:
    proc = _bench("--style", "a", "--runs", str(tmp_path), "--run", "x")
    assert proc.returncode == 2 and "--run is set per seed by this script" in proc.stderr
    proc = _bench("--style", "a", "--runs", str(tmp_path), "--jobs", "0")
    assert proc.returncode == 2 and "--jobs: expected a whole number >= 1" in proc.stderr
    proc = _bench("--seeds", "0")
    assert proc.returncode == 2 and "--style is required" in proc.stderr
    assert not (tmp_path / "bench_demo.json").exists()
