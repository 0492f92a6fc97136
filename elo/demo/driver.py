"""The four steps of ``make demo`` in order (:func:`main`; the package docstring of
``elo/demo/__init__.py`` and docs/demo.md describe them): the dataset, the search, the
rows, the table."""

from __future__ import annotations

import datetime
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from elo.demo.options import CONTENDERS, DemoOptions, parse_options
from elo.demo.processes import (
    StepFailed,
    console_script,
    load_average,
    machine,
    run_step,
    say,
)
from elo.demo.rows import Table, contender_table, oracle_row, ranked_single_tasks, single_keys
from elo.demo.run_rows import rows_to_run, run_rows
from elo.demo.table import comparison_table
from elo.errors import EloError
from elo.rundir import atomic_write_json, atomic_write_text


def make_data(o: DemoOptions) -> None:
    """Step 1: the demo dataset (unless it exists) and its modality cache."""
    if not (o.data / "labels.csv").exists():
        cmd = [console_script("elo-data"), "demo", "--out", str(o.data), "--clips", str(o.clips)]
        run_step([*cmd, "--seed", str(o.seed), "--style", o.style], o.log)
    else:
        made = o.data / "demo.json"
        spec = json.loads(made.read_text(encoding="utf-8")) if made.exists() else {}
        if spec and spec.get("style", "a") != o.style:
            raise EloError(
                f"{o.data} holds a style-{spec.get('style', 'a')} demo dataset ({made}), "
                f"not style {o.style}: pass --style {spec.get('style', 'a')} or another --data"
            )
        if spec:
            say(
                f"dataset {o.data} reused (style {spec.get('style', 'a')}, "
                f"{spec.get('clips')} clips, generator seed {spec.get('seed')})"
            )
    check_labels(o)
    run_step([console_script("elo-extract"), str(o.data), *o.cfg, "--no-progress"], o.log)


def check_labels(o: DemoOptions) -> None:
    """Both probes' columns are in the dataset's labels.csv (before any training)."""
    labels = o.data / "labels.csv"
    if not labels.exists():  # not a demo dataset: elo-eval reports its own labels
        return
    with open(labels, encoding="utf-8") as fh:
        columns = fh.readline().strip().split(",")
    for column in ("label", o.nuisance_label):
        if column not in columns:
            raise EloError(
                f"{labels} has no column {column!r} for the "
                f"{'action' if column == 'label' else 'nuisance'} probe; pass --nuisance "
                f"with one of {', '.join(c for c in columns if c not in ('path', 'split'))}"
            )


def evolve(o: DemoOptions) -> Path:
    """Step 2: the loss search (resumed when its folder exists); returns the folder."""
    search = o.run / "search"
    s_cmd = [console_script("elo-search"), *o.cfg, "--data", str(o.data)]
    s_cmd += ["--population", str(o.population), "--generations", str(o.generations)]
    s_cmd += ["--seed-points", *o.seed_args]
    if o.proxy_steps:
        s_cmd += ["--steps", str(o.proxy_steps)]
    if o.workers:
        s_cmd += ["--workers", str(o.workers)]
    if o.fitness:
        s_cmd += ["--fitness", o.fitness]
    resume = (search / "config.yaml").exists()
    s_cmd += ["--resume" if resume else "--out", str(search)]
    run_step([*s_cmd, *o.search_args], o.log)
    return search


def _report_failures(failures: Mapping[str, Exception], keys: Sequence[str]) -> None:
    for key, err in failures.items():
        what = str(err) if isinstance(err, StepFailed) else f"{type(err).__name__}: {err}"
        say(f"row {key} failed: {what}", err=True)
    say(
        f"demo failed: {len(failures)} of {len(keys)} rows failed "
        f"({', '.join(failures)}); the finished rows are kept and reused: fix the cause "
        f"(see the logs above) and rerun",
        err=True,
    )


def _table_rows(
    o: DemoOptions, search: Path, results: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The table's rows in :data:`~elo.demo.options.CONTENDERS` order: the single-task
    rows named by their task, and the oracle picked among them."""
    ranked = ranked_single_tasks(search)[: o.oracle_k]  # the tasks of single, single_2, ...
    for key, (task, _) in zip(single_keys(len(ranked)), ranked, strict=True):
        if key in results:
            results[key]["task"] = task
    if "oracle" in o.contenders and "single" in results:
        results["oracle"] = oracle_row(
            results, [k for k in single_keys(o.oracle_k) if k in results], o.contenders
        )
    return [results[k] for k in CONTENDERS if k in o.contenders and k in results]


def _meta(
    o: DemoOptions, host: Mapping[str, Any], times: Sequence[float], argv: Sequence[str] | None
) -> dict[str, Any]:
    """What the table records of the run: its date, machine, options and seconds;
    ``times`` are the start and the ends of the data, search and rows steps."""
    start, data, search, end = times
    started = datetime.datetime.fromtimestamp(start).astimezone().isoformat(timespec="seconds")
    return {
        "date": started,
        "machine": {**host, "load_end": load_average()},
        "seed": o.seed,
        "style": o.style,
        "nuisance_label": o.nuisance_label,
        "final_steps": o.final_steps,
        "jobs": o.jobs,
        "threads_per_row": o.row_threads,
        "oracle_k": o.oracle_k,
        "search_args": list(o.search_args),
        "seconds": {
            "data": round(data - start, 1),
            "search": round(search - data, 1),
            "rows": round(end - search, 1),
            "total": round(end - start, 1),
        },
        "argv": list(sys.argv[1:] if argv is None else argv),
    }


def _data_and_search(o: DemoOptions) -> tuple[Path, Table, list[float]]:
    """Steps 1 and 2 and the rows' table; the times the data and search steps ended."""
    make_data(o)
    t_data = time.time()
    search = evolve(o)
    t_search = time.time()
    return search, contender_table(o, search), [t_data, t_search]


def main(argv: Sequence[str] | None = None) -> int:
    o = parse_options(argv)
    o.run.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    host = machine()
    say(
        f"ELo demo: data={o.data} run={o.run} seed={o.seed}; {host['cores']} cores, "
        f"load {host['load']}; rows {o.jobs} at a time, {o.row_threads} torch "
        f"thread(s) each"
    )
    try:
        search, table, steps = _data_and_search(o)
    except StepFailed as exc:
        say(f"demo failed: {exc}", err=True)
        return 1
    except EloError as exc:
        say(f"demo: {exc}", err=True)
        return 2
    keys = rows_to_run(o, table)
    results, failures = run_rows(o, table, keys, t_start)
    if failures:
        _report_failures(failures, keys)
        return 1
    rows = _table_rows(o, search, results)
    times = [t_start, *steps, time.time()]
    meta = _meta(o, host, times, argv)
    text = comparison_table(rows, final_steps=o.final_steps, seed=o.seed, meta=meta)
    atomic_write_text(o.run / "comparison.md", text)
    atomic_write_json(o.run / "comparison.json", {**meta, "rows": rows})
    say(text)
    row_sum = sum(float(r.get("seconds", 0.0)) for r in results.values())
    s = meta["seconds"]
    say(
        f"demo finished in {s['total'] / 60:.1f} min (data {s['data']:.0f} s, search "
        f"{s['search']:.0f} s, rows {s['rows']:.0f} s wall for {row_sum:.0f} s of row "
        f"time, {o.jobs} at a time); seed {o.seed}; rerun: make demo (finished steps are "
        f"reused; delete {o.run} to start over)"
    )
    return 0
