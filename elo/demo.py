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

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from elo.errors import EloError
from elo.rundir import atomic_write_json, atomic_write_text, read_jsonl

#: rows of the comparison table, in order (``--contenders`` chooses among them)
CONTENDERS = (
    "frame", "timemean", "motion", "pixels", "random", "supervised", "uniform",
    "uniform_tuned", "rlw", "uncertainty", "single", "oracle", "byol", "simsiam",
    "clip_byol", "clip_simsiam", "evolved",
)  # fmt: skip
#: rows left out by default because they duplicate another row: the label-free lr grid
#: picks the final lr (x1 of configs/train/final.yaml), so "uniform λ (tuned lr)" trains
#: what "uniform λ" trains; pixel statistics are the motion statistics plus per-cell
#: colour means (time-mean appearance), 0.503 against 0.500 in README (Demo results)
DUPLICATES = {"uniform_tuned": "uniform", "pixels": "motion"}
#: the rows ``make demo`` runs
DEFAULT_CONTENDERS = tuple(c for c in CONTENDERS if c not in DUPLICATES)
#: parameter-free probe rows: what a linear probe reads from raw clips without learning
PROBES = ("frame", "timemean", "motion", "pixels")
#: the order rows start in (longest first, so the last ones to finish are short): many
#: active terms, then the one-objective trainings, then rows without training; a guess
#: from the terms each row trains, not a measurement
LONGEST_FIRST = (
    "evolved",
    "uniform",
    "uniform_tuned",
    "rlw",
    "uncertainty",
    "byol",
    "simsiam",
    "clip_byol",
    "clip_simsiam",
    "supervised",
    "single",
    "random",
    "pixels",
    "motion",
    "timemean",
    "frame",
)
#: every ELo-model row is trained at this shared size (docs/learning.md)
FINAL_OVERRIDES = (
    "train.batch_size=16", "model.rgb.width=16", "model.flow.width=16", "model.audio.width=16",
)  # fmt: skip
RAW_RGB = "data.modalities.rgb.center_time=false"  # probes of the uncentred clips
#: the tuned-uniform row's learning rates (x1/4, x1, x4 the final lr of configs/train/final.yaml)
LR_GRID = "0.0005,0.002,0.008"
LR_GRID_FRACTION = 10  # each grid lr trains final_steps // 10 steps (elo/train/lrgrid.py)
#: the thread-count variables torch (OpenMP, MKL) and numpy's BLAS read at start-up
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
TAIL_LINES = 12  # log lines a failed step reports
#: the nuisance probe's labels.csv column per demo style: the digit / glyph for a and b;
#: style c's test split has other shapes than its train split (elo/data/demo_c.py), so
#: its nuisance probe reads the object's texture (solid, stripes, noise: in both splits)
NUISANCE = {"a": "identity", "b": "identity", "c": "texture"}

_print_lock = threading.Lock()


def _say(msg: str, *, err: bool = False) -> None:
    """One whole line to stdout (or stderr), never interleaved with another row's."""
    with _print_lock:
        print(msg, file=sys.stderr if err else sys.stdout, flush=True)


class ProbeFeatureEncoder(torch.nn.Module):
    """Parameter-free features of a clip ``B,3,T,H,W`` for the shortcut probes:

    * ``frame``: the middle frame's pixels, pooled to 8x8 (appearance at one instant);
    * ``timemean``: the time-mean image pooled to 8x8 (the static scene and the
      object's smear): with both near chance the action is not in appearance;
    * ``motion``: hand-made motion statistics, per cell of a 4x4 grid: mean |frame
      difference| and the Lucas-Kanade flow (u, v) (:class:`elo.evaluation.evaluate.PixelStatsEncoder`
      without its colour means).
    """

    def __init__(self, kind: str = "frame") -> None:
        super().__init__()
        if kind not in ("frame", "timemean", "motion"):
            raise ValueError(f"unknown probe features {kind!r}")
        self.kind = kind
        self.embed_dim = 3 * 16 if kind == "motion" else 3 * 64
        self.pyramid_channels = (self.embed_dim,)

    def forward(self, x: torch.Tensor) -> Any:
        from elo.evaluation.evaluate import PixelStatsEncoder
        from elo.model.heads import EncoderOutput

        f = torch.nn.functional
        if self.kind == "frame":
            emb = f.adaptive_avg_pool2d(x[:, :, x.shape[2] // 2], 8).flatten(1)
        elif self.kind == "timemean":
            emb = f.adaptive_avg_pool2d(x.mean(dim=2), 8).flatten(1)
        else:
            emb = PixelStatsEncoder(in_channels=x.shape[1], grid=4)(x).embedding[:, -48:]
        return EncoderOutput(pyramid=[emb[:, :, None, None, None]], embedding=emb)


def build_probe_encoder(*, kind: str = "frame") -> ProbeFeatureEncoder:
    """Builder of :class:`ProbeFeatureEncoder` (exportable: ``elo.demo:build_probe_encoder``)."""
    return ProbeFeatureEncoder(kind)


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def load_average() -> list[float] | None:
    """The 1, 5 and 15-minute load averages (None where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def machine() -> dict[str, Any]:
    """The CPU model, the usable cores and the load average now."""
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), ""
            )
    except OSError:
        pass
    return {
        "cpu": cpu or platform.processor() or platform.machine(),
        "cores": cores(),
        "load": load_average(),
    }


def row_env(threads: int) -> dict[str, str]:
    """The environment of a row's subprocesses: ``threads`` torch / BLAS threads.
    ``elo-train`` and ``elo-eval`` leave torch's thread count at its start-up value,
    which torch takes from ``OMP_NUM_THREADS``."""
    return {**os.environ, **{var: str(threads) for var in THREAD_VARS}}


class StepFailed(Exception):
    """A step's command exited non-zero: the command, its exit code, its log and the
    log's last lines."""

    def __init__(self, cmd: Sequence[str], rc: int, log: Path) -> None:
        self.cmd, self.rc, self.log = list(cmd), rc, log
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        self.tail = lines[-TAIL_LINES:]
        super().__init__(
            f"exit {rc}: {shlex.join(self.cmd)}\n  log: {log}\n"
            + "\n".join(f"  | {ln}" for ln in self.tail)
        )


def _run(
    cmd: list[str], log: Path, *, env: Mapping[str, str] | None = None, echo: bool = True
) -> None:
    """Run ``cmd`` with its output appended to ``log``; raises :class:`StepFailed`."""
    if echo:
        _say(f"$ {shlex.join(cmd)}")
    t0 = time.time()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"$ {shlex.join(cmd)}\n")
        fh.flush()
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env).returncode
    if echo:
        _say(f"  ... {time.time() - t0:.0f} s (log: {log})")
    if rc != 0:
        raise StepFailed(cmd, rc, log)


def run_parallel(
    tasks: Sequence[tuple[str, Callable[[], dict[str, Any]]]],
    jobs: int,
    on_done: Callable[[str, dict[str, Any] | None, BaseException | None], None] | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, Exception]]:
    """Run the ``(key, task)`` pairs ``jobs`` at a time, started in the given order.
    Returns the results and the failures by key; a failure does not stop the others
    (their results are reused by a rerun). ``on_done(key, result, error)`` runs in this
    thread as each one finishes."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    results: dict[str, dict[str, Any]] = {}
    failures: dict[str, Exception] = {}
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="demo-row") as pool:
        futures = {pool.submit(task): key for key, task in tasks}
        for fut in as_completed(futures):
            key = futures[fut]
            try:
                results[key] = fut.result()
            except Exception as exc:  # reported with its row
                failures[key] = exc
            if on_done is not None:
                on_done(key, results.get(key), failures.get(key))
    return results, failures


def ranked_single_tasks(search_dir: Path) -> list[tuple[str, dict[str, float]]]:
    """The single-task seed points of the search, one per task, best first by the
    search's own rule (docs/search.md): highest rung reached, then (label-free) fitness;
    the earlier record wins a tie."""
    from elo.model.terms import TermKey

    best: dict[str, tuple[tuple[int, float, int], dict[str, float]]] = {}
    for n, rec in enumerate(read_jsonl(search_dir / "evaluations.jsonl")):
        if rec.get("status") != "ok" or not isinstance(rec.get("weights"), dict):
            continue
        on = {TermKey.parse(k).task for k, v in rec["weights"].items() if v > 1e-6}
        if len(on) != 1:
            continue
        task = on.pop()
        rank = (int(rec.get("rung", 0) or 0), float(rec["fitness"]), -n)
        if task not in best or rank > best[task][0]:
            best[task] = (rank, rec["weights"])
    order = sorted(best.items(), key=lambda kv: kv[1][0], reverse=True)
    return [(task, weights) for task, (_, weights) in order]


def best_single_task(search_dir: Path) -> tuple[str, dict[str, float]] | None:
    """The single-task seed point with the best fitness (:func:`ranked_single_tasks`)."""
    ranked = ranked_single_tasks(search_dir)
    return ranked[0] if ranked else None


def single_keys(n: int) -> list[str]:
    """Row keys of the ``n`` fittest single tasks: ``single`` (the fitness's pick, a
    table row), then ``single_2`` ... (the oracle's other candidates)."""
    return ["single", *(f"single_{i}" for i in range(2, n + 1))][: max(0, n)]


def export_pixel_stats(out: Path, kind: str = "pixels") -> None:
    """A parameter-free reference encoder: ``pixels`` (mean colour per cell, motion
    energy, Lucas-Kanade flow per cell) or a :class:`ProbeFeatureEncoder` kind: what a
    probe can read from the clips without learning."""
    from elo.evaluation.evaluate import PIXEL_STATS_BUILDER, build_pixel_stats_encoder
    from elo.train.export import save_encoder

    if kind == "pixels":
        enc: torch.nn.Module = build_pixel_stats_encoder()
        builder, kwargs = PIXEL_STATS_BUILDER, {}
    else:
        enc, builder, kwargs = (
            build_probe_encoder(kind=kind),
            "elo.demo:build_probe_encoder",
            {"kind": kind},
        )
    save_encoder(out, enc, builder=builder, kwargs=kwargs, input_info={"modality": "rgb"})


def single_term_weights(config: str, key: str) -> dict[str, Any]:
    """A weights file with only ``key`` on, over every registered term (the config's
    objective with nothing excluded: supervised, rgb/byol, rgb/simsiam are rows)."""
    from elo.config import load_config
    from elo.model.objective import terms_from_config

    terms = terms_from_config(load_config(config, ["objective.exclude=[]"]))
    return {"weights": {str(t): float(str(t) == key) for t in terms}}


def baseline_overrides(objective: str) -> list[str]:
    """Frame baselines sized like the demo's video model: the train split only, small CNN,
    64 frames a step (8 clips x 8 frames), heads scaled down from the paper's."""
    heads = (
        ["byol.hidden_dim=256", "byol.proj_dim=64"]
        if objective == "byol"
        else ["simsiam.proj_dim=128", "simsiam.pred_dim=32"]
    )
    return [
        "data.split=train",
        "data.image_size=32",
        "encoder.arch=small_cnn",
        "train.batch_size=64",
        "train.checkpoint_every=0",
        *heads,
    ]


@dataclass(frozen=True)
class DemoOptions:
    """The parsed ``python -m elo.demo`` options (see :func:`main`)."""

    data: Path
    run: Path
    config: str = "demo"
    clips: int = 1200
    style: str = "a"
    population: int = 64
    generations: int = 2
    proxy_steps: int | None = None
    final_steps: int = 300
    workers: int | None = None
    fitness: str | None = None
    seed: int = 0
    contenders: tuple[str, ...] = DEFAULT_CONTENDERS
    jobs: int = 2
    threads: int | None = None
    oracle_k: int = 3
    search_args: tuple[str, ...] = field(default_factory=tuple)
    nuisance: str | None = None

    @property
    def nuisance_label(self) -> str:
        """The labels.csv column of the nuisance probe (:data:`NUISANCE` by style)."""
        return self.nuisance or NUISANCE[self.style]

    @property
    def log(self) -> Path:
        return self.run / "demo.log"

    def row_log(self, key: str) -> Path:
        return self.run / "logs" / f"{key}.log"

    @property
    def row_threads(self) -> int:
        """Torch threads of each row: ``--threads``, else the cores shared by the jobs."""
        return self.threads or max(1, cores() // self.jobs)

    @property
    def cfg(self) -> list[str]:
        return ["--config", self.config]

    @property
    def seed_args(self) -> list[str]:
        return ["--seed", str(self.seed)]


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def parse_options(argv: Sequence[str] | None = None) -> DemoOptions:
    p = argparse.ArgumentParser(prog="python -m elo.demo", description=__doc__.splitlines()[0])
    p.add_argument("--data", default="data/demo")
    p.add_argument("--run", default="runs/demo")
    p.add_argument("--config", default="demo")
    p.add_argument("--clips", type=int, default=1200)
    p.add_argument(
        "--style",
        choices=("a", "b", "c"),
        default="a",
        help="demo generator when the dataset is made (elo-data demo --style)",
    )
    p.add_argument("--population", type=int, default=64)
    p.add_argument("--generations", type=int, default=2)
    p.add_argument("--proxy-steps", type=int, default=None, help="default: train.steps")
    p.add_argument("--final-steps", type=int, default=300, help="budget of every model")
    p.add_argument("--workers", type=int, default=None, help="the search's concurrent trials")
    p.add_argument("--fitness", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--search-args",
        default="",
        help='more elo-search arguments, one shell-quoted string (e.g. "search.steps=30")',
    )
    p.add_argument(
        "--jobs",
        type=_positive,
        default=2,
        help="rows trained and probed at a time (default 2; 1 = one after another)",
    )
    p.add_argument(
        "--threads",
        type=_positive,
        default=None,
        help="torch threads of each row (default: cores // jobs, at least 1)",
    )
    p.add_argument(
        "--oracle-k",
        type=_positive,
        default=3,
        help="the oracle row trains the K fittest single tasks and keeps the best by the "
        "test probe (default 3)",
    )
    p.add_argument(
        "--nuisance",
        help="labels.csv column of the nuisance probe (default: identity; texture on style c)",
    )
    p.add_argument(
        "--contenders",
        default=",".join(DEFAULT_CONTENDERS),
        help=f"comma list of rows to train and evaluate, from {','.join(CONTENDERS)} "
        f"(default: all but {','.join(DUPLICATES)}, which duplicate other rows)",
    )
    args = p.parse_args(argv)
    wanted = [c.strip() for c in args.contenders.split(",") if c.strip()]
    unknown = sorted(set(wanted) - set(CONTENDERS))
    if unknown:
        p.error(f"unknown contender(s) {', '.join(unknown)}; choose from {', '.join(CONTENDERS)}")
    try:
        search_args = tuple(shlex.split(args.search_args))
    except ValueError as exc:
        p.error(f"--search-args {args.search_args!r}: {exc}")
    return DemoOptions(
        data=Path(args.data), run=Path(args.run), config=args.config, clips=args.clips,
        style=args.style, population=args.population, generations=args.generations,
        proxy_steps=args.proxy_steps, final_steps=args.final_steps, workers=args.workers,
        fitness=args.fitness, seed=args.seed, contenders=tuple(wanted), jobs=args.jobs,
        threads=args.threads, oracle_k=args.oracle_k, search_args=search_args,
        nuisance=args.nuisance,
    )  # fmt: skip


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


def contender_table(o: DemoOptions, search: Path) -> dict[str, tuple[str, list[str]]]:
    """Step 3's rows: key -> (table name, extra ``elo-train`` arguments, or ``--pixels``
    for a parameter-free encoder); writes the weights files the rows train with. Besides
    the :data:`CONTENDERS` rows it holds the oracle's other candidates ``single_2`` ...
    (:func:`single_keys`); the ``oracle`` row itself is picked from them after probing."""
    weights_dir = o.run / "weights"
    weights_dir.mkdir(parents=True, exist_ok=True)
    evolved = json.loads((search / "best_weights.json").read_text())
    uniform = {"weights": {k: 1.0 for k in evolved["weights"]}}
    atomic_write_json(weights_dir / "uniform.json", uniform)
    all_terms = ["objective.exclude=[]"]  # the weights files below list every term
    for key, term in (("supervised", "rgb/supervised"), ("clip_byol", "rgb/byol"),
                      ("clip_simsiam", "rgb/simsiam")):  # fmt: skip
        atomic_write_json(weights_dir / f"{key}.json", single_term_weights(o.config, term))
    table: dict[str, tuple[str, list[str]]] = {
        "frame": ("single-frame pixels (appearance, no training)", ["--pixels"]),
        "timemean": ("time-mean image (appearance, no training)", ["--pixels"]),
        "motion": ("motion statistics (hand-made, no training)", ["--pixels"]),
        "pixels": ("pixel statistics (hand-made, no training)", ["--pixels"]),
        "supervised": (
            "supervised control (labels, same encoder and budget)",
            ["--weights", str(weights_dir / "supervised.json"), *all_terms],
        ),
        "clip_byol": (
            "BYOL (clip-level head on the video encoder, rgb/byol)",
            ["--weights", str(weights_dir / "clip_byol.json"), *all_terms],
        ),
        "clip_simsiam": (
            "SimSiam (clip-level head on the video encoder, rgb/simsiam)",
            ["--weights", str(weights_dir / "clip_simsiam.json"), *all_terms],
        ),
        "random": ("random init", ["--steps", "0"]),
        "uniform": ("uniform λ", ["--weights", str(weights_dir / "uniform.json")]),
        **weighting_rows(o, weights_dir / "uniform.json"),
        "byol": ("BYOL (frames)", ["--objective", "byol", *baseline_overrides("byol")]),
        "simsiam": ("SimSiam (frames)", ["--objective", "simsiam", *baseline_overrides("simsiam")]),
        "evolved": ("evolved λ (ELo)", ["--weights", str(search / "best_weights.json")]),
    }
    ranked = ranked_single_tasks(search)[: o.oracle_k]
    for i, (key, (task, weights)) in enumerate(
        zip(single_keys(len(ranked)), ranked, strict=True), 1
    ):
        atomic_write_json(weights_dir / f"{key}.json", {"weights": weights})
        name = (
            f"best single task by fitness ({task})"
            if i == 1
            else f"single task #{i} by fitness ({task})"
        )
        table[key] = (name, ["--weights", str(weights_dir / f"{key}.json")])
    return table


def weighting_rows(o: DemoOptions, uniform: Path) -> dict[str, tuple[str, list[str]]]:
    """The weighting baselines over the evolved row's terms (elo/train/weighting.py):
    uniform λ with its lr picked on :data:`LR_GRID` (label-free, elo/train/lrgrid.py; the
    grid costs 3 x ``final_steps // 10`` extra steps), RLW and uncertainty weighting."""
    w = ["--weights", str(uniform)]
    grid = ["--lr-grid", LR_GRID, "--lr-grid-steps", str(max(2, o.final_steps // LR_GRID_FRACTION))]
    return {
        "uniform_tuned": ("uniform λ (tuned lr)", [*w, "--weighting", "uniform", *grid]),
        "rlw": ("RLW (random loss weighting)", [*w, "--weighting", "rlw"]),
        "uncertainty": ("uncertainty weighting", [*w, "--weighting", "uncertainty"]),
    }


def contender_row(o: DemoOptions, key: str, name: str, extra: list[str]) -> dict[str, Any]:
    """Steps 3 and 4 for one row: train (or export) its encoder unless it exists, then
    probe it for both labels; the row of the comparison table. The commands' output goes
    to ``RUN/logs/<key>.log``; they run with :attr:`DemoOptions.row_threads` threads."""
    out = o.run / "models" / key
    log, env = o.row_log(key), row_env(o.row_threads)
    baseline = "--objective" in extra
    encoder_dir = out / "final" if baseline else out  # baselines export into final/
    reused = True
    if extra == ["--pixels"]:
        if not (encoder_dir / "encoder.yaml").exists():
            export_pixel_stats(encoder_dir, key)
            reused = False
    elif not (encoder_dir / "encoder.yaml").exists():
        steps = [] if "--steps" in extra else ["--steps", str(o.final_steps)]
        conf = [] if baseline else o.cfg  # baselines read configs/baseline/<name>.yaml
        opts = [] if baseline else ["--no-progress", *FINAL_OVERRIDES]
        _run([_bin("elo-train"), *conf, "--data", str(o.data), *steps, *o.seed_args,
              "--out", str(out), *opts, *extra], log, env=env, echo=False)  # fmt: skip
        reused = False
    row: dict[str, Any] = {"key": key, "model": name, "dir": str(encoder_dir)}
    # "identity" holds the nuisance probe's results, whichever column it reads
    for field_, label in (("label", "label"), ("identity", o.nuisance_label)):
        ev = out / f"eval-{label}"
        if not (ev / "results.json").exists():
            raw = [RAW_RGB] if key in PROBES else []  # appearance probes: uncentred RGB
            _run([_bin("elo-eval"), "--encoder", str(encoder_dir), "--data", str(o.data),
                  *o.cfg, "--protocol", "linear", "--label", label, "--out", str(ev),
                  *o.seed_args, *raw], log, env=env, echo=False)  # fmt: skip
            reused = False
        row[field_] = json.loads((ev / "results.json").read_text())
    row["reused"] = reused
    return row


def oracle_row(
    rows: Mapping[str, dict[str, Any]], candidates: Sequence[str], shown: Sequence[str] = ()
) -> dict[str, Any]:
    """The ``oracle`` row: of the probed single-task ``candidates`` (fittest first), the
    one with the best action top-1 on the test split (the earlier one on a tie). It
    reads the test labels, so it bounds what picking one of them could give; it is no
    label-free method. Its seconds are those of the candidates not ``shown`` as rows."""
    probed = [rows[k] for k in candidates]
    best = max(probed, key=lambda r: float(r["label"]["top1"]))
    return {
        "key": "oracle",
        "model": f"oracle: best of the {len(probed)} fittest single tasks by test probe "
        f"({best['task']})",
        "dir": best["dir"],
        "label": best["label"],
        "identity": best["identity"],
        "task": best["task"],
        "picked": best["key"],
        "candidates": [
            {"key": r["key"], "task": r["task"], "fitness_rank": i, "top1": r["label"]["top1"]}
            for i, r in enumerate(probed, 1)
        ],
        "seconds": sum(float(r.get("seconds", 0.0)) for r in probed if r["key"] not in shown),
        "reused": all(r.get("reused", False) for r in probed),
    }


def rows_to_run(o: DemoOptions, table: Mapping[str, Any]) -> list[str]:
    """The rows to train and probe, longest first (:data:`LONGEST_FIRST`): the chosen
    contenders the table has, and the oracle's candidates when ``oracle`` is chosen."""
    keys = [k for k in o.contenders if k in table]
    if "oracle" in o.contenders:
        keys += [k for k in single_keys(o.oracle_k) if k in table and k not in keys]

    def order(key: str) -> int:
        base = "single" if key.startswith("single") else key
        return LONGEST_FIRST.index(base) if base in LONGEST_FIRST else len(LONGEST_FIRST)

    return sorted(keys, key=order)  # stable: single, single_2, ... keep their order


def _first_line(err: BaseException | None) -> str:
    if isinstance(err, StepFailed):
        return f"exit {err.rc}, log {err.log}"
    return f"{type(err).__name__}: {err}".splitlines()[0]


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
    for key, task in tasks.items():
        if key in results:
            results[key]["task"] = task
    if "oracle" in o.contenders and "single" in results:
        results["oracle"] = oracle_row(
            results, [k for k in single_keys(o.oracle_k) if k in results], o.contenders
        )
    rows = [results[k] for k in CONTENDERS if k in o.contenders and k in results]
    t_end = time.time()
    meta = {
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


def comparison_table(
    rows: list[dict[str, Any]],
    *,
    final_steps: int,
    seed: int,
    meta: Mapping[str, Any] | None = None,
) -> str:
    """The comparison as Markdown: one line per row (a reused row shows its seconds as
    ``reused``), then the date, machine and timing of ``meta`` and the oracle's
    candidates when there are."""
    nuisance = (meta or {}).get("nuisance_label", "identity")
    lines = [
        f"Demo test split, linear probe, {final_steps} training steps per model, seed {seed}.",
    ]
    if meta:
        m = meta["machine"]
        lines.append(
            f"Run {meta['date']} on {m['cores']} cores ({m['cpu']}), load average "
            f"{m['load']} at the start and {m['load_end']} at the end; dataset style "
            f"{meta['style']}; rows {meta['jobs']} at a time, {meta['threads_per_row']} "
            f"torch thread(s) each."
        )
    lines += [
        "",
        f"| model | action top-1 | action balanced acc | {nuisance} top-1 (nuisance) "
        "| seconds (train + eval) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:  # seconds: this invocation's train + eval
        secs = "reused" if r.get("reused") else f"{r.get('seconds', float('nan')):.0f}"
        lines.append(
            f"| {r['model']} | {r['label']['top1']:.3f} | "
            f"{r['label']['balanced_accuracy']:.3f} | {r['identity']['top1']:.3f} | {secs} |"
        )
    for r in rows:
        if r.get("candidates"):
            picks = ", ".join(
                f"#{c['fitness_rank']} {c['task']} {c['top1']:.3f}" for c in r["candidates"]
            )
            lines += ["", f"Oracle candidates (fitness rank, task, action top-1): {picks}."]
    if meta:
        s = meta["seconds"]
        lines += [
            "",
            f"Seconds: data {s['data']:.0f}, search {s['search']:.0f}, rows {s['rows']:.0f} "
            f"(wall), total {s['total'] / 60:.1f} min.",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
