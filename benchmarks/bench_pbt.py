"""Population-based training over λ (``elo-search --strategy pbt | pb2``, docs/search.md)
at a given step budget, for several seeds, probed like the demo's rows.

    python benchmarks/bench_pbt.py --data data/demo --seeds 0,1,2 --steps 300 \\
        --out runs/bench-pbt                       # the demo's final budget
    python benchmarks/bench_pbt.py ... --strategy pb2 --population 4 --interval 50

Per seed ``s`` (folder ``OUT/seed-<s>/``): ``elo-search --strategy S --population P
--steps N --seed s`` on the data (``search/``; continued with ``--resume`` when a run
was cut, skipped when it finished), then the same linear probe as the demo
(``elo-eval --protocol linear``, labels ``label`` and ``identity``, on the test split)
of its exported encoder ``search/final``. The members train at the demo rows' size
(``elo.demo.FINAL_OVERRIDES``: batch 16, encoder widths 16) with the final training's
warm-up (configs/train/final.yaml), so a row compares with the demo's ``elo-train``
rows at the same ``--steps``. Finished seeds are reused, so the command can be rerun
after a kill. Prints, and writes to ``OUT/summary.json``, each seed's search wall time
and probe accuracies, and their mean ± sd over the seeds.

Extra ``key=value`` arguments go to ``elo-search`` as config overrides.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

LABELS = ("label", "identity")


def _bin(name: str) -> str:
    local = Path(sys.executable).with_name(name)
    return str(local) if local.exists() else (shutil.which(name) or name)


def _run(cmd: list[str], log: Path) -> None:
    print("$ " + " ".join(cmd), flush=True)
    with open(log, "a", encoding="utf-8") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        rc = subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT)
    if rc != 0:
        raise SystemExit(f"bench_pbt: {cmd[0]} exited {rc}; see {log}")


def final_warmup() -> int:
    """``warmup_steps`` of configs/train/final.yaml (the demo rows' training)."""
    from elo.config import load_part

    return int(load_part("train", "final")["warmup_steps"])


def pbt_defaults() -> dict[str, Any]:
    """The ``search.pbt`` block of configs/search/base.yaml (where its defaults live)."""
    from elo.config import load_part

    return dict(load_part("search", "base")["pbt"])


def run_seed(seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Search (or resume, or reuse) and probe one seed; its row."""
    from elo.demo import FINAL_OVERRIDES

    folder = args.out / f"seed-{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    log, search = folder / "bench.log", folder / "search"
    timing = folder / "search_seconds.json"
    if not (search / "final" / "encoder.yaml").exists():
        t0 = time.perf_counter()
        cmd = [_bin("elo-search"), "--config", args.config]
        if (search / "config.yaml").exists():
            cmd += ["--resume", str(search)]
        else:
            cmd += [
                "--strategy",
                args.strategy,
                "--population",
                str(args.population),
                "--steps",
                str(args.steps),
                "--data",
                str(args.data),
                "--seed",
                str(seed),
                "--out",
                str(search),
                f"search.pbt.interval={args.interval}",
                f"train.warmup_steps={final_warmup()}",
                *FINAL_OVERRIDES,
                *args.overrides,
            ]
        if args.workers:
            cmd += ["--workers", str(args.workers)]
        _run(cmd, log)
        done = json.loads(timing.read_text()) if timing.exists() else {"seconds": 0.0}
        timing.write_text(json.dumps({"seconds": done["seconds"] + time.perf_counter() - t0}))
    row: dict[str, Any] = {"seed": seed, "dir": str(search)}
    row["search_seconds"] = json.loads(timing.read_text())["seconds"] if timing.exists() else None
    for label in LABELS:
        ev = folder / f"eval-{label}"
        if not (ev / "results.json").exists():
            _run(
                [
                    _bin("elo-eval"),
                    "--encoder",
                    str(search / "final"),
                    "--data",
                    str(args.data),
                    "--config",
                    args.config,
                    "--protocol",
                    "linear",
                    "--label",
                    label,
                    "--out",
                    str(ev),
                    "--seed",
                    str(seed),
                ],
                log,
            )
        row[label] = json.loads((ev / "results.json").read_text())
    return row


def mean_sd(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.3f}" if values else "n/a"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def summary(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"{args.strategy}, population {args.population}, {args.steps} steps per member, "
        f"interval {args.interval}, seeds {[r['seed'] for r in rows]}",
        "",
        "| seed | action top-1 | action balanced acc | identity top-1 | search s |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        s = r.get("search_seconds")
        lines.append(
            f"| {r['seed']} | {r['label']['top1']:.3f} | {r['label']['balanced_accuracy']:.3f} "
            f"| {r['identity']['top1']:.3f} | {'n/a' if s is None else f'{s:.0f}'} |"
        )
    lines.append(
        f"| mean ± sd | {mean_sd([r['label']['top1'] for r in rows])} | "
        f"{mean_sd([r['label']['balanced_accuracy'] for r in rows])} | "
        f"{mean_sd([r['identity']['top1'] for r in rows])} | |"
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="demo-style dataset folder")
    ap.add_argument("--seeds", default="0,1,2", help="comma list of seeds")
    ap.add_argument("--steps", type=int, help="steps of every member (search.pbt.steps)")
    ap.add_argument("--strategy", choices=["pbt", "pb2"], default="pbt")
    ap.add_argument("--population", type=int, help="members (search.pbt.population)")
    ap.add_argument("--interval", type=int, help="steps between copies (search.pbt.interval)")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--config", default="demo")
    ap.add_argument("--out", type=Path, default=Path("runs/bench-pbt"))
    ap.add_argument("overrides", nargs="*", help="config overrides key=value for elo-search")
    args = ap.parse_args(argv)
    for key, value in pbt_defaults().items():  # unset: configs/search/base.yaml's value
        if getattr(args, key, value) is None:
            setattr(args, key, value)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [run_seed(int(s), args) for s in args.seeds.split(",") if s.strip()]
    text = summary(rows, args)
    (args.out / "summary.json").write_text(json.dumps({"rows": rows}, indent=1))
    (args.out / "summary.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
