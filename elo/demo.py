"""``make demo``: the whole method on the built-in demo dataset, in one command.

1. make the demo dataset (``elo-data demo``) and cache its modalities (``elo-extract``):
   :func:`make_data`;
2. evolve the loss (``elo-search --population 64`` with the demo profile): :func:`evolve`;
3. train, at one shared step budget, the evolved loss, uniform weights (and the RLW and
   uncertainty weightings of elo/train/weighting.py), the best single task of the
   search's seed points by the fitness, the best of the fittest ``--oracle-k`` single
   tasks by the test probe (an oracle: it reads the labels), a supervised control and
   the BYOL / SimSiam baselines; a random-init encoder and the parameter-free probes are
   exported untrained (:func:`contender_table` lists the rows);
4. evaluate every encoder with the same linear probe on the demo test split, for the
   action label and a nuisance label (``--nuisance``: the object's identity, or its
   texture on style c) (:func:`contender_row`, one row each), and print one table
   (:func:`comparison_table`).

Steps 3-4 run ``--jobs`` rows at a time (default 2), each row's subprocesses with
``cores // jobs`` torch threads (``OMP_NUM_THREADS``) and their output in
``RUN/logs/<row>.log``. Every step is one console command run as a subprocess, so each
is rerunnable alone; finished steps are skipped on a rerun (the search resumes). Seeds
are printed. docs/demo.md: the rows, the timing, and ``benchmarks/bench_demo.py``.
"""

from __future__ import annotations

import datetime
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from elo.demo_options import CONTENDERS, DemoOptions, parse_options
from elo.demo_rows import (
    build_probe_encoder as build_probe_encoder,  # export id elo.demo:build_probe_encoder
)
from elo.demo_rows import (
    comparison_table,
    contender_row,
    contender_table,
    oracle_row,
    ranked_single_tasks,
    rows_to_run,
    single_keys,
)
from elo.demo_run import (
    StepFailed,
    _bin,
    _first_line,
    _run,
    _say,
    load_average,
    machine,
    run_parallel,
)
from elo.errors import EloError
from elo.rundir import atomic_write_json, atomic_write_text


def make_data(o: DemoOptions) -> None:
    """Step 1: the demo dataset (unless it exists) and its modality cache."""
    if not (o.data / "labels.csv").exists():
        _run([_bin("elo-data"), "demo", "--out", str(o.data), "--clips", str(o.clips),
              "--seed", str(o.seed), "--style", o.style], o.log)  # fmt: skip
    else:
        made = o.data / "demo.json"
        spec = json.loads(made.read_text(encoding="utf-8")) if made.exists() else {}
        if spec and spec.get("style", "a") != o.style:
            raise EloError(
                f"{o.data} holds a style-{spec.get('style', 'a')} demo dataset ({made}), "
                f"not style {o.style}: pass --style {spec.get('style', 'a')} or another --data"
            )
        if spec:
            _say(
                f"dataset {o.data} reused (style {spec.get('style', 'a')}, "
                f"{spec.get('clips')} clips, generator seed {spec.get('seed')})"
            )
    check_labels(o)
    _run([_bin("elo-extract"), str(o.data), *o.cfg, "--no-progress"], o.log)


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
    s_cmd = [_bin("elo-search"), *o.cfg, "--data", str(o.data), "--population",
             str(o.population), "--generations", str(o.generations),
             "--seed-points", *o.seed_args]  # fmt: skip
    if o.proxy_steps:
        s_cmd += ["--steps", str(o.proxy_steps)]
    if o.workers:
        s_cmd += ["--workers", str(o.workers)]
    if o.fitness:
        s_cmd += ["--fitness", o.fitness]
    s_cmd += (
        ["--resume", str(search)] if (search / "config.yaml").exists() else ["--out", str(search)]
    )
    _run([*s_cmd, *o.search_args], o.log)
    return search


def run_rows(
    o: DemoOptions, table: Mapping[str, tuple[str, list[str]]], keys: Sequence[str], t0: float
) -> tuple[dict[str, dict[str, Any]], dict[str, Exception]]:
    """Steps 3 and 4 for ``keys``, :attr:`DemoOptions.jobs` rows at a time; prints each
    row's start and its seconds (or its failure with its log's tail) as it happens."""
    done: list[str] = []

    def task(key: str) -> Callable[[], dict[str, Any]]:
        def go() -> dict[str, Any]:
            _say(f"row {key}: started (log: {o.row_log(key)})")
            t_row = time.time()
            row = contender_row(o, key, *table[key])
            return {**row, "seconds": time.time() - t_row}

        return go

    def report(key: str, row: dict[str, Any] | None, err: BaseException | None) -> None:
        done.append(key)
        so_far = f"{len(done)}/{len(keys)} rows, demo so far {(time.time() - t0) / 60:.1f} min"
        if row is not None:
            what = "reused" if row["reused"] else "train + eval"
            _say(f"row {key}: {row['seconds']:.0f} s {what}, action top-1 "
                 f"{row['label']['top1']:.3f} ({so_far})")  # fmt: skip
        else:
            _say(f"row {key} FAILED ({so_far}; the other rows go on): {_first_line(err)}", err=True)

    return run_parallel([(k, task(k)) for k in keys], o.jobs, report)


def _table_rows(
    o: DemoOptions, results: dict[str, dict[str, Any]], tasks: Mapping[str, str]
) -> list[dict[str, Any]]:
    """The table's rows in CONTENDERS order, single-task rows named by their task and
    the oracle row picked among them."""
    for key, task in tasks.items():
        if key in results:
            results[key]["task"] = task
    if "oracle" in o.contenders and "single" in results:
        results["oracle"] = oracle_row(
            results, [k for k in single_keys(o.oracle_k) if k in results], o.contenders
        )
    return [results[k] for k in CONTENDERS if k in o.contenders and k in results]


def _meta(
    o: DemoOptions,
    argv: Sequence[str] | None,
    started: str,
    host: dict[str, Any],
    times: tuple[float, float, float, float],
) -> dict[str, Any]:
    """What comparison.json records besides the rows: date, machine, options, timing."""
    t_start, t_data, t_search, t_end = times
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
            "data": round(t_data - t_start, 1),
            "search": round(t_search - t_data, 1),
            "rows": round(t_end - t_search, 1),
            "total": round(t_end - t_start, 1),
        },
        "argv": list(sys.argv[1:] if argv is None else argv),
    }


def main(argv: Sequence[str] | None = None) -> int:
    o = parse_options(argv)
    o.run.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    host = machine()
    _say(
        f"ELo demo: data={o.data} run={o.run} seed={o.seed}; {host['cores']} cores, "
        f"load {host['load']}; rows {o.jobs} at a time, {o.row_threads} torch "
        f"thread(s) each"
    )
    try:
        make_data(o)
        t_data = time.time()
        search = evolve(o)
        t_search = time.time()
        table = contender_table(o, search)
    except StepFailed as exc:
        _say(f"demo failed: {exc}", err=True)
        return 1
    except EloError as exc:
        _say(f"demo: {exc}", err=True)
        return 2
    ranked = ranked_single_tasks(search)[: o.oracle_k]  # the tasks of single, single_2, ...
    tasks = dict(zip(single_keys(len(ranked)), (task for task, _ in ranked), strict=True))
    keys = rows_to_run(o, table)
    results, failures = run_rows(o, table, keys, t_start)
    if failures:
        for key, err in failures.items():
            what = str(err) if isinstance(err, StepFailed) else f"{type(err).__name__}: {err}"
            _say(f"row {key} failed: {what}", err=True)
        _say(
            f"demo failed: {len(failures)} of {len(keys)} rows failed "
            f"({', '.join(failures)}); the finished rows are kept and reused: fix the cause "
            f"(see the logs above) and rerun",
            err=True,
        )
        return 1
    rows = _table_rows(o, results, tasks)
    t_end = time.time()
    meta = _meta(o, argv, started, host, (t_start, t_data, t_search, t_end))
    text = comparison_table(rows, final_steps=o.final_steps, seed=o.seed, meta=meta)
    atomic_write_text(o.run / "comparison.md", text)
    atomic_write_json(o.run / "comparison.json", {**meta, "rows": rows})
    _say(text)
    row_sum = sum(float(r.get("seconds", 0.0)) for r in results.values())
    _say(f"demo finished in {(t_end - t_start) / 60:.1f} min (data {t_data - t_start:.0f} s, "
         f"search {t_search - t_data:.0f} s, rows {t_end - t_search:.0f} s wall for "
         f"{row_sum:.0f} s of row time, {o.jobs} at a time); seed {o.seed}; rerun: make demo "
         f"(finished steps are reused; delete {o.run} to start over)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
