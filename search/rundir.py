"""The run directory of a search and its log (:class:`RunLog`, the evolution's
listener: it writes the directory and prints progress).

Run directory (``runs/<name>/``)::

    config.yaml          the resolved config (``--resume`` reads it back)
    evaluations.jsonl    one line per finished evaluation: generation, index, vector,
                         weights (λ), fitness, status (ok | error | nonfinite),
                         seconds, metrics, details -- the source of truth
    errors.jsonl         the error line of each failed trial (by trial id)
    search_state.json    the searcher state (strategy, RNG, generation, pending / live)
    best_weights.json    {"weights": {term: λ}, "fitness": ..., ...} for elo-train
    generations.jsonl    best / median fitness per finished generation
    *.png, report.md     plots and the report (search/report.py)
    ray/                 Ray Tune's own trial folders

Every write is atomic (temp + rename, elo/rundir.py) or one fsynced JSON line, so
``kill -9`` loses at most the trials in flight. ``--resume`` restores the state, puts
the individuals that were running back in the queue and replays any evaluation the log
holds that the state does not (search/generation.py): nothing finished is lost or
evaluated twice.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from elo.errors import ConfigError
from elo.rundir import append_jsonl, atomic_write_json, atomic_write_text, read_jsonl

if TYPE_CHECKING:
    from elo.search.generation import Evolution

CONFIG_FILE = "config.yaml"
EVALUATIONS = "evaluations.jsonl"
ERRORS = "errors.jsonl"
GENERATIONS = "generations.jsonl"
STATE_FILE = "search_state.json"
BEST_FILE = "best_weights.json"


def _fmt_s(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class RunLog:
    """The evolution's listener (search/generation.py): writes the run directory and
    prints progress."""

    def __init__(self, run_dir: Path, total: int, done: int, echo: Callable[[str], None]) -> None:
        self.run_dir, self.total, self.done = run_dir, total, done
        self.echo = echo
        self.session_start, self.session_done = time.time(), 0
        logged = list(read_jsonl(run_dir / EVALUATIONS))
        self.failed = sum(1 for r in logged if r.get("status") != "ok")
        self.best_written: float | None = None
        self.on_generation: Callable[[], None] | None = None
        # progress: a live line on a terminal, one line per generation otherwise; a
        # TensorBoard view of the JSON lines (elo/train/tblog.py)
        from elo.train.tblog import SearchBoard

        self.board = SearchBoard(run_dir)
        ok = [r for r in logged if r.get("fitness") is not None]
        self.best_record = max(ok, key=lambda r: r["fitness"]) if ok else None
        self.live = echo is print and sys.stdout.isatty()

    def evaluation(self, record: dict[str, Any]) -> None:
        append_jsonl(self.run_dir / EVALUATIONS, {**record, "time": time.time()})
        self.done += 1
        self.session_done += 1
        self.failed += record["status"] != "ok"
        if record["status"] in ("error", "timeout"):  # the trial's own error (search/failures.py)
            append_jsonl(self.run_dir / ERRORS, {k: record.get(k) for k in _ERROR_KEYS})
        fit = record.get("fitness")
        if fit is not None and (self.best_record is None or fit > self.best_record["fitness"]):
            self.best_record = record
        self.board.trial(record, self.done)
        if self.live:
            sys.stdout.write(f"\r\033[K{self.progress()}")
            sys.stdout.flush()

    def progress(self) -> str:
        """``trials 12/128 (0 failed)  best so far 0.1234  ETA 3m 10s``."""
        best = "n/a" if self.best_record is None else f"{self.best_record['fitness']:.4f}"
        return (
            f"trials {self.done}/{self.total} ({self.failed} failed)  best so far {best}"
            f"  ETA {_fmt_s(self.eta())}"
        )

    def checkpoint(self, evolution: Evolution) -> None:
        evolution.save(str(self.run_dir / STATE_FILE))
        best = evolution.best
        if best is not None and best["fitness"] != self.best_written:
            write_best(self.run_dir, best, evolution)
            self.best_written = best["fitness"]

    def eta(self) -> float:
        rate = (time.time() - self.session_start) / max(1, self.session_done)
        return rate * (self.total - self.done)

    def generation_done(self, summary: dict[str, Any]) -> None:
        append_jsonl(self.run_dir / GENERATIONS, summary)
        self.board.generation(summary, self.best_record)
        g = summary["generation"]
        best = "n/a" if summary["best"] is None else f"{summary['best']:.4f}"
        med = "n/a" if summary["median"] is None else f"{summary['median']:.4f}"
        clear = "\r\033[K" if self.live else ""  # over the live line
        self.echo(
            f"{clear}generation {g + 1}: best {best}  median {med}  | {self.progress()}"
            f"  | elapsed {_fmt_s(time.time() - self.session_start)}"
        )
        if self.on_generation is not None:
            self.on_generation()


_ERROR_KEYS = ("trial_id", "generation", "index", "status", "error")


def write_best(run_dir: Path, best: Mapping[str, Any], evolution: Evolution) -> None:
    from elo.model.objective import Weights
    from elo.model.terms import TermKey

    terms = [TermKey.parse(t) for t in evolution.space.terms]
    doc = Weights(terms, best["weights"]).to_json(
        fitness=best["fitness"],
        generation=best["generation"],
        index=best["index"],
        vector=best["vector"],
        strategy=evolution.strategy.name,
    )
    atomic_write_json(run_dir / BEST_FILE, doc)


def default_run_dir() -> Path:
    return Path("runs") / time.strftime("search-%Y%m%d-%H%M%S")


def prepare_run_dir(cfg: dict[str, Any], out: str | Path | None) -> Path:
    """A new run directory holding the resolved config."""
    run_dir = Path(out) if out else default_run_dir()
    if (run_dir / EVALUATIONS).exists() or (run_dir / STATE_FILE).exists():
        raise ConfigError(
            f"{run_dir} already holds a search; continue it with --resume {run_dir} "
            "or choose a new --out"
        )
    from elo.rundir import disk_errors

    with disk_errors(run_dir):  # a read-only or full disk: one line naming the folder
        run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / CONFIG_FILE, yaml.safe_dump(cfg, sort_keys=False))
    return run_dir


def load_run_config(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        raise ConfigError(f"{run_dir} is not a search run directory (no {CONFIG_FILE})")
    with open(path, encoding="utf-8") as fh:
        cfg = yaml.safe_load(fh)
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: not a config mapping")
    from elo.config_values import check_config

    check_config(cfg, path)
    return cfg
