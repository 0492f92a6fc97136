"""The ``make demo`` driver's parts without training (elo/demo.py): rows run ``--jobs`` at
a time as real subprocesses with their own logs and thread counts, a failed row reports
its log's tail, the single-task rows follow the search's rule, the oracle picks by the
probe, and the table carries the date, machine and seed. The whole driver at a tiny
budget: tests/test_end_to_end.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from elo import demo, demo_options, demo_rows, demo_run
from elo.demo_options import DemoOptions
from elo.demo_run import StepFailed
from elo.errors import EloError

#: a row command: announce ``me`` started, then wait (up to 60 s) for ``other`` to start
WAIT_FOR_OTHER = (
    "import pathlib, sys, time\n"
    "d, me, other = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]\n"
    "(d / me).touch()\n"
    "print('row', me, 'started')\n"
    "end = time.monotonic() + 60\n"
    "while not (d / other).exists():\n"
    "    if time.monotonic() > end:\n"
    "        sys.exit('the other row never ran alongside ' + me)\n"
    "    time.sleep(0.05)\n"
    "print('row', me, 'saw', other)\n"
)


def _row(tmp: Path, me: str, other: str) -> Any:
    def go() -> dict[str, Any]:
        cmd = [sys.executable, "-c", WAIT_FOR_OTHER, str(tmp), me, other]
        demo_run._run(cmd, tmp / "logs" / f"{me}.log", echo=False)
        return {"key": me}

    return go


def test_two_jobs_run_rows_side_by_side_with_their_own_logs(tmp_path: Path) -> None:
    """Each row waits for the other to start: both finish only if they ran at once."""
    seen: list[str] = []
    results, failures = demo_run.run_parallel(
        [("a", _row(tmp_path, "a", "b")), ("b", _row(tmp_path, "b", "a"))],
        2,
        lambda key, row, err: seen.append(key),
    )
    assert failures == {} and set(results) == {"a", "b"} and sorted(seen) == ["a", "b"]
    for me, other in (("a", "b"), ("b", "a")):
        log = (tmp_path / "logs" / f"{me}.log").read_text().splitlines()
        assert log[0].startswith("$ ") and log.count(f"row {other} started") == 0, log
        assert log[-2:] == [f"row {me} started", f"row {me} saw {other}"], log


def test_a_failed_row_reports_its_tail_and_the_others_finish(tmp_path: Path) -> None:
    def bad() -> dict[str, Any]:
        code = "import sys\nfor i in range(30): print('line', i)\nsys.exit(3)"
        demo_run._run([sys.executable, "-c", code], tmp_path / "bad.log", echo=False)
        return {}

    def good() -> dict[str, Any]:
        demo_run._run([sys.executable, "-c", "print('fine')"], tmp_path / "good.log", echo=False)
        return {"key": "good"}

    results, failures = demo_run.run_parallel([("bad", bad), ("good", good)], 1)
    assert results == {"good": {"key": "good"}} and list(failures) == ["bad"]
    err = failures["bad"]
    assert isinstance(err, StepFailed) and err.rc == 3 and err.log == tmp_path / "bad.log"
    assert err.tail == [f"line {i}" for i in range(30 - demo_run.TAIL_LINES, 30)]
    assert (
        "exit 3" in str(err) and "| line 29" in str(err) and str(tmp_path / "bad.log") in str(err)
    )


@pytest.mark.parametrize("threads", [1, 2])
def test_row_processes_get_the_thread_count(tmp_path: Path, threads: int) -> None:
    """torch in a row's subprocess starts with ``threads`` intra-op threads."""
    log = tmp_path / "t.log"
    code = "import torch; print('threads', torch.get_num_threads())"
    demo_run._run([sys.executable, "-c", code], log, env=demo_run.row_env(threads), echo=False)
    assert log.read_text().splitlines()[-1] == f"threads {threads}"


def _evals(tmp: Path, recs: list[dict[str, Any]]) -> Path:
    (tmp / "evaluations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return tmp


def test_single_tasks_ranked_by_rung_then_fitness_one_per_task(tmp_path: Path) -> None:
    w = {"rgb/future": 0.0, "rgb/contrastive": 0.0, "rgb+flow/contrastive": 0.0}
    recs = [
        {"status": "ok", "rung": 2, "fitness": 0.01, "weights": {**w, "rgb/future": 1.0}},
        {"status": "ok", "rung": 1, "fitness": 0.09, "weights": {**w, "rgb/contrastive": 1.0}},
        {
            "status": "ok",
            "rung": 2,
            "fitness": 0.02,  # two modality pairings, one task
            "weights": {**w, "rgb/contrastive": 1.0, "rgb+flow/contrastive": 1.0},
        },
        {
            "status": "ok",
            "rung": 2,
            "fitness": 0.50,  # two tasks: not a single task
            "weights": {**w, "rgb/future": 1.0, "rgb/contrastive": 1.0},
        },
        {"status": "failed", "rung": 2, "fitness": 0.90, "weights": {**w, "rgb/future": 1.0}},
        {"status": "ok", "rung": 2, "fitness": 0.005, "weights": {**w, "rgb/future": 1.0}},
    ]
    ranked = demo_rows.ranked_single_tasks(_evals(tmp_path, recs))
    assert [t for t, _ in ranked] == ["contrastive", "future"]  # rung 2: 0.02 > 0.01
    assert ranked[0][1]["rgb+flow/contrastive"] == 1.0 and ranked[1][1]["rgb/future"] == 1.0
    assert demo_rows.best_single_task(tmp_path) == ranked[0]
    assert (
        demo_rows.single_keys(3) == ["single", "single_2", "single_3"]
        and demo_rows.single_keys(0) == []
    )


def _probed(key: str, task: str, top1: float, seconds: float) -> dict[str, Any]:
    res = {"top1": top1, "balanced_accuracy": top1}
    return {
        "key": key,
        "task": task,
        "dir": f"models/{key}",
        "label": res,
        "identity": {"top1": 0.1},
        "seconds": seconds,
        "reused": False,
    }


def test_oracle_picks_the_best_probe_among_the_fittest_single_tasks() -> None:
    rows = {
        "single": _probed("single", "reconstruction", 0.26, 100.0),
        "single_2": _probed("single_2", "contrastive", 0.35, 90.0),
        "single_3": _probed("single_3", "future", 0.35, 80.0),  # a tie: the fitter one wins
    }
    row = demo_rows.oracle_row(rows, ["single", "single_2", "single_3"], shown=("single",))
    assert row["picked"] == "single_2" and row["dir"] == "models/single_2"
    assert row["label"]["top1"] == 0.35 and row["task"] == "contrastive"
    assert row["model"] == "oracle: best of the 3 fittest single tasks by test probe (contrastive)"
    assert [c["fitness_rank"] for c in row["candidates"]] == [1, 2, 3]
    assert row["seconds"] == 170.0  # "single" is its own row; its seconds are there
    assert demo_rows.oracle_row(rows, ["single", "single_2"])["seconds"] == 190.0


def test_default_rows_drop_duplicates_and_start_longest_first(tmp_path: Path) -> None:
    o = demo_options.parse_options(["--data", str(tmp_path), "--oracle-k", "3"])
    assert "uniform_tuned" not in o.contenders and "pixels" not in o.contenders
    assert {"oracle", "single", "evolved", "uniform", "rlw", "uncertainty"} <= set(o.contenders)
    assert o.jobs == 2 and o.contenders == demo_options.DEFAULT_CONTENDERS
    table = {
        k: ("", []) for k in [*demo_options.CONTENDERS, "single_2", "single_3"] if k != "oracle"
    }
    keys = demo_rows.rows_to_run(o, table)
    assert keys[0] == "evolved" and keys[-1] == "frame"
    i = keys.index("single")
    assert keys[i : i + 3] == ["single", "single_2", "single_3"]
    assert set(keys) == (set(o.contenders) - {"oracle"}) | {"single_2", "single_3"}
    chosen = demo_options.parse_options(["--contenders", "uniform_tuned,pixels", "--jobs", "1"])
    assert demo_rows.rows_to_run(chosen, table) == ["uniform_tuned", "pixels"]
    assert demo_options.parse_options(["--search-args", "--strategy pbt"]).search_args == (
        "--strategy",
        "pbt",
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--jobs", "0"], "--jobs: expected a whole number >= 1, got '0'"),
        (["--contenders", "evolved,nope"], "unknown contender(s) nope"),
        (["--search-args", "'unclosed"], "--search-args"),
    ],
)
def test_bad_options_exit_2_naming_the_option(args: list[str], message: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "elo.demo", *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_an_existing_dataset_of_another_style_is_refused(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("path,label\n")
    (tmp_path / "demo.json").write_text(json.dumps({"style": "c", "clips": 48, "seed": 0}))
    o = DemoOptions(data=tmp_path, run=tmp_path / "run", style="a")
    with pytest.raises(EloError, match="style-c demo dataset .* pass --style c"):
        demo.make_data(o)


def test_the_nuisance_probe_reads_a_column_the_dataset_has(tmp_path: Path) -> None:
    """Style c has no identity column and different shapes per split: texture."""
    (tmp_path / "labels.csv").write_text("path,label,class,split,shape,texture\n")
    o = DemoOptions(data=tmp_path, run=tmp_path / "run", style="c")
    assert o.nuisance_label == "texture"
    demo.check_labels(o)  # both columns there: nothing raised
    assert DemoOptions(data=tmp_path, run=tmp_path, style="a").nuisance_label == "identity"
    wrong = DemoOptions(data=tmp_path, run=tmp_path / "run", style="a")
    with pytest.raises(
        EloError,
        match="no column 'identity' for the nuisance probe; pass "
        "--nuisance with one of label, class, shape, texture",
    ):
        demo.check_labels(wrong)
    chosen = demo_options.parse_options(["--style", "a", "--nuisance", "shape"])
    assert chosen.nuisance_label == "shape"


def test_table_carries_date_machine_seed_oracle_and_timing() -> None:
    res = {"top1": 0.5, "balanced_accuracy": 0.25}
    rows = [
        {"model": "uniform λ", "label": res, "identity": res, "seconds": 61.4, "reused": False},
        {"model": "random init", "label": res, "identity": res, "seconds": 0.2, "reused": True},
        {
            "model": "oracle: best of the 2 fittest single tasks by test probe (future)",
            "label": res,
            "identity": res,
            "seconds": 30.0,
            "reused": False,
            "candidates": [
                {"fitness_rank": 1, "task": "contrastive", "top1": 0.25},
                {"fitness_rank": 2, "task": "future", "top1": 0.5},
            ],
        },
    ]
    meta = {
        "date": "2030-01-02T03:04:05+00:00",
        "machine": {"cores": 2, "cpu": "Some CPU", "load": [1.5, 1.0, 0.5], "load_end": None},
        "style": "c",
        "nuisance_label": "texture",
        "jobs": 2,
        "threads_per_row": 1,
        "seconds": {"data": 60.0, "search": 420.0, "rows": 900.0, "total": 1380.0},
    }
    text = demo_rows.comparison_table(rows, final_steps=300, seed=4, meta=meta)
    assert "300 training steps per model, seed 4." in text
    assert "| texture top-1 (nuisance) |" in text
    assert "Run 2030-01-02T03:04:05+00:00 on 2 cores (Some CPU)" in text
    assert "style c; rows 2 at a time, 1 torch thread(s) each" in text
    assert "| uniform λ | 0.500 | 0.250 | 0.500 | 61 |" in text
    assert "| random init | 0.500 | 0.250 | 0.500 | reused |" in text
    assert "#1 contrastive 0.250, #2 future 0.500." in text
    assert "data 60, search 420, rows 900 (wall), total 23.0 min." in text
