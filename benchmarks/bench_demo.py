"""The demo over seeds: ``python -m elo.demo`` once per seed on a dataset of one style,
then one table of mean ± sd per row and the search row's paired differences.

    python benchmarks/bench_demo.py --style a --seeds 0 1 2
    python benchmarks/bench_demo.py --style c --seeds 0 1 2 --final-steps 200 --jobs 2
    python benchmarks/bench_demo.py --style a --seeds 0 1 2 --strategy pbt   # elo-search --strategy
    python benchmarks/bench_demo.py --table-from runs/bench_demo/style-a runs/bench_demo/style-c

Seed ``n`` makes its own dataset (``elo-data demo --style S --seed n`` into
``DATA/style-S-seed-n-clips-C``) and runs the driver with ``--seed n`` in
``RUNS/seed-n`` (``RUNS`` default ``runs/bench_demo/style-S[-STRATEGY]``). Any other
option is passed to the driver unchanged (``--population``, ``--final-steps``,
``--jobs``, ``--contenders``, ...; ``python -m elo.demo --help``); ``--search-args``
and ``--strategy`` reach ``elo-search``. Resumable: a seed whose ``comparison.json``
was written with the same driver arguments is reused, and an unfinished one reruns the
driver, which reuses its finished steps. ``RUNS/bench_demo.json`` records the options;
a rerun with others is refused. ``--wrap "CMD ..."`` runs each seed's driver under
CMD (e.g. a job-slot wrapper or ``nice -n 5``). docs/demo.md describes the table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: the search's row and the rows it is compared with seed by seed (targets: it
#: should beat each in mean, and uniform λ in every seed)
SEARCH = "evolved"
PAIRED = ("uniform", "rlw", "uncertainty", "single")
#: driver options this script sets itself, per seed
OWN = ("--data", "--run", "--seed", "--style", "--search-args")


def parse(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        epilog="Other options go to python -m elo.demo (see its --help).",
        allow_abbrev=False,
    )
    p.add_argument("--style", choices=("a", "b", "c"), help="demo generator (elo-data demo)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--data", default="data/bench_demo", help="parent folder of the datasets")
    p.add_argument("--runs", help="parent folder of the seeds' runs")
    p.add_argument("--strategy", help="elo-search --strategy for the search row")
    p.add_argument("--search-args", default="", help="more elo-search arguments, one string")
    p.add_argument("--wrap", default="", help="command prefix for each seed's driver run")
    p.add_argument(
        "--table-from",
        nargs="+",
        metavar="DIR",
        help="only print the table of finished runs: bench folders (seed-*/) or demo runs",
    )
    args, rest = p.parse_known_args(argv)
    if args.table_from is None and args.style is None:
        p.error("--style is required (or --table-from DIR ... to print a table)")
    for opt in rest:
        if opt.split("=", 1)[0] in OWN:
            p.error(
                f"{opt.split('=', 1)[0]} is set per seed by this script; use --data, "
                f"--runs, --seeds, --style or --search-args here"
            )
    return args, rest


def search_args(args: argparse.Namespace) -> list[str]:
    extra = ["--strategy", args.strategy] if args.strategy else []
    return [*extra, *shlex.split(args.search_args)]


def driver_args(
    args: argparse.Namespace, rest: list[str], seed: int, data: Path, run: Path
) -> list[str]:
    out = ["--data", str(data), "--run", str(run), "--seed", str(seed), "--style", args.style]
    s_args = search_args(args)
    return [*out, *(["--search-args", shlex.join(s_args)] if s_args else []), *rest]


def run_bench(args: argparse.Namespace, rest: list[str]) -> int:
    from elo.demo.options import parse_options

    probe = parse_options([*rest, "--data", "x"])  # the driver's own errors, exit 2
    suffix = f"-{args.strategy}" if args.strategy else ""
    runs = Path(args.runs or f"runs/bench_demo/style-{args.style}{suffix}")
    record = {"style": args.style, "demo_args": rest, "search_args": search_args(args)}
    rec_file = runs / "bench_demo.json"
    if rec_file.exists():
        old = json.loads(rec_file.read_text(encoding="utf-8"))
        if old != record:
            print(
                f"bench_demo: {rec_file} was made with {json.dumps(old)}, not "
                f"{json.dumps(record)}: pass the same options, or another --runs",
                file=sys.stderr,
            )
            return 2
    runs.mkdir(parents=True, exist_ok=True)
    rec_file.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    wrap = shlex.split(args.wrap)
    for seed in args.seeds:
        data = Path(args.data) / f"style-{args.style}-seed-{seed}-clips-{probe.clips}"
        run = runs / f"seed-{seed}"
        d_args = driver_args(args, rest, seed, data, run)
        done = run / "comparison.json"
        if done.exists() and json.loads(done.read_text(encoding="utf-8")).get("argv") == d_args:
            print(f"bench_demo: seed {seed} finished ({done}), reused", flush=True)
            continue
        cmd = [*wrap, sys.executable, "-m", "elo.demo", *d_args]
        print(f"bench_demo: seed {seed}: $ {shlex.join(cmd)}", flush=True)
        rc = subprocess.run(cmd).returncode
        if rc != 0:
            print(
                f"bench_demo: seed {seed} failed (exit {rc}); its log: {run}/demo.log and "
                f"{run}/logs/; rerun the same command to resume",
                file=sys.stderr,
            )
            return 1
    text = render([runs])
    (runs / "table.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


def load_runs(folder: Path) -> list[dict[str, Any]]:
    """The finished demo runs of ``folder``: its own comparison.json, or its seed-*/ ones
    (by seed)."""
    if (folder / "comparison.json").exists():
        files = [folder / "comparison.json"]
    else:
        files = sorted(folder.glob("seed-*/comparison.json"), key=lambda f: _seed_of(f.parent))
    runs = [json.loads(f.read_text(encoding="utf-8")) for f in files]
    return [{**r, "path": str(f.parent)} for r, f in zip(runs, files, strict=True)]


def _seed_of(folder: Path) -> int:
    m = re.fullmatch(r"seed-(-?\d+)", folder.name)
    return int(m.group(1)) if m else 0


def mean_sd(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for one value)."""
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, None
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def _pm(values: Sequence[float], signed: bool = False) -> str:
    m, sd = mean_sd(values)
    fmt = "+.3f" if signed else ".3f"
    return f"{m:{fmt}} ± {sd:.3f}" if sd is not None else f"{m:{fmt}} (n = 1)"


def generic_name(row: dict[str, Any]) -> str:
    """A row's name without the task a seed picked (single-task rows differ by seed)."""
    name = str(row["model"])
    return re.sub(r" \([^()]*\)$", "", name) if "task" in row else name


def render(folders: Sequence[Path]) -> str:
    out = [
        f"bench_demo table, rendered {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}"
        f" (load average now {_load()})",
    ]
    for folder in folders:
        runs = load_runs(folder)
        out += ["", *(table(folder, runs) if runs else [f"{folder}: no finished demo run"])]
    return "\n".join(out) + "\n"


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):
        return "n/a"


def table(folder: Path, runs: list[dict[str, Any]]) -> list[str]:
    """Mean ± sd per row over the runs, then the search row's paired differences."""
    seeds = [r.get("seed") for r in runs]
    first = runs[0]
    lines = [
        f"## {folder}: style {first.get('style', '?')}, seeds {' '.join(map(str, seeds))}, "
        f"{first.get('final_steps', '?')} steps per model"
        + (f", elo-search {shlex.join(first['search_args'])}" if first.get("search_args") else ""),
        "",
    ]
    for r in runs:
        m, s = r.get("machine", {}), r.get("seconds", {})
        lines.append(
            f"* seed {r.get('seed')}: {r.get('date', '?')}, {m.get('cores', '?')} cores, load "
            f"{m.get('load')} -> {m.get('load_end')}, {s.get('total', float('nan')) / 60:.1f} "
            f"min (search {s.get('search', float('nan')) / 60:.1f}), rows {r.get('jobs')} at a "
            f"time; {sum(1 for x in r['rows'] if x.get('reused'))} of {len(r['rows'])} rows "
            f"reused from an earlier invocation"
        )
    by_key: dict[str, list[dict[str, Any] | None]] = {}
    for i, r in enumerate(runs):
        for row in r["rows"]:
            by_key.setdefault(row["key"], [None] * len(runs))[i] = row
    lines += [
        "",
        f"| row | action top-1 (mean ± sd) | per seed | {first.get('nuisance_label', 'identity')} "
        "top-1 (nuisance, mean) | task per seed |",
        "|---|---|---|---|---|",
    ]
    for per in by_key.values():
        have = [x for x in per if x is not None]
        top1 = [float(x["label"]["top1"]) for x in have]
        ident = mean_sd([float(x["identity"]["top1"]) for x in have])[0]
        cells = " ".join(f"{x['label']['top1']:.3f}" if x else "—" for x in per)
        picks = (
            " ".join(str(x.get("task", "—")) if x else "—" for x in per)
            if "task" in have[0]
            else ""
        )
        lines.append(f"| {generic_name(have[0])} | {_pm(top1)} | {cells} | {ident:.3f} | {picks} |")
    lines += paired(by_key, seeds)
    return lines


def paired(by_key: dict[str, list[dict[str, Any] | None]], seeds: list[Any]) -> list[str]:
    """The search row minus each of :data:`PAIRED`, seed by seed (action top-1)."""
    if SEARCH not in by_key:
        return ["", f"(no {SEARCH} row: no paired differences)"]
    lines = [
        "",
        f"Paired differences, {SEARCH} minus the row, action top-1, per seed "
        f"({' '.join(map(str, seeds))}):",
        "",
        "| minus | per seed (win / tie / loss) | mean ± sd | search wins |",
        "|---|---|---|---|",
    ]
    above: list[str] = []
    below: list[str] = []
    every_seed: bool | None = None
    for key in PAIRED:
        if key not in by_key:
            continue
        diffs: list[float] = []
        cells = []
        for s, o in zip(by_key[SEARCH], by_key[key], strict=True):
            if s is None or o is None:
                cells.append("—")
                continue
            d = float(s["label"]["top1"]) - float(o["label"]["top1"])
            diffs.append(d)
            cells.append(f"{d:+.3f} ({'win' if d > 0 else 'tie' if d == 0 else 'loss'})")
        name = generic_name(next(x for x in by_key[key] if x is not None))
        if diffs:
            wins = sum(d > 0 for d in diffs)
            (above if mean_sd(diffs)[0] > 0 else below).append(name)
            if key == "uniform":
                every_seed = wins == len(diffs)
            lines.append(
                f"| {name} | {' '.join(cells)} | {_pm(diffs, signed=True)} | {wins}/{len(diffs)} |"
            )
    lines += [
        "",
        f"Search row mean above: {', '.join(above) or 'none'}; not above: "
        f"{', '.join(below) or 'none'}; beats uniform λ in every seed: "
        f"{'n/a' if every_seed is None else 'yes' if every_seed else 'no'}.",
    ]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args, rest = parse(argv)
    if args.table_from is not None:
        if rest:
            print(
                f"bench_demo: --table-from takes no demo options (got {shlex.join(rest)})",
                file=sys.stderr,
            )
            return 2
        folders = [Path(d) for d in args.table_from]
        missing = [str(d) for d in folders if not load_runs(d)]
        if missing:
            print(
                f"bench_demo: no comparison.json in {', '.join(missing)} (nor in its "
                f"seed-*/ folders): pass a bench folder or a demo run folder",
                file=sys.stderr,
            )
            return 2
        print(render(folders), end="")
        return 0
    return run_bench(args, rest)


if __name__ == "__main__":
    sys.exit(main())
