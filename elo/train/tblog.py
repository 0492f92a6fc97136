"""TensorBoard event files that mirror the JSON-lines logs, so runs can be watched with
``tensorboard --logdir runs/``. The JSON lines (``train_log.jsonl``,
``evaluations.jsonl``, ``generations.jsonl``) stay the source of truth: these files are
a view of them, written next to them under ``tensorboard/``.

* ``elo-train`` (:class:`TrainingBoard`, ``OUT/tensorboard/``): ``train/loss``,
  ``train/lr``, ``train/grad_norm``, ``train/clips_per_s``, ``loss_raw/<term>`` and
  ``loss_weighted/<term>`` per step, ``lambda/<term>`` once (the run's fixed λ), and
  with ``objective.weighting`` rlw / uncertainty ``loss_weight/<term>`` (the weight on
  the normalised term) and ``loss_logvar/<term>`` (uncertainty's s_k) per step;
* a search (:class:`SearchBoard`, ``RUN/tensorboard/``): ``trial/fitness`` and
  ``trial/seconds`` per finished trial (step = trials done), ``generation/best``,
  ``generation/median``, ``generation/failed``, ``best/fitness`` (best so far) and
  ``best_lambda/<term>`` (λ of the best so far) per generation.

Without the ``tensorboard`` package nothing is written (one warning). Uses
``torch.utils.tensorboard.SummaryWriter``; imported on first use.

>>> board = ScalarBoard(None)   # no folder: a disabled board that accepts every call
>>> board.add({"train/loss": 1.0}, step=1)
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

log = logging.getLogger(__name__)
SUBDIR = "tensorboard"


def _after_existing_files(log_dir: Path) -> None:
    """Wait until the clock is past the creation second of ``log_dir``'s newest event
    file. TensorBoard reads a folder's files in name order, and a name is the creation
    second, host, pid and a per-process counter: a second writer of one process in the
    same second could sort first (counter 10 before 9) and a resumed run's steps would
    be read before the steps they continue."""
    seconds = []
    for f in log_dir.glob("events.out.tfevents.*"):
        part = f.name.split(".")[3]
        if part.isdigit():
            seconds.append(int(part))
    while seconds and int(time.time()) <= max(seconds):
        time.sleep(0.05)


class ScalarBoard:
    """Scalars into one event-file folder; ``log_dir=None`` disables it. On resume,
    ``purge_step`` hides the events an earlier run wrote at or after that step. The
    writer opens on the first scalar and is not pickled (Ray copies the search's
    listener): a copy opens its own event file if it ever writes."""

    def __init__(self, log_dir: str | Path | None, *, purge_step: int | None = None) -> None:
        self.log_dir = None if log_dir is None else Path(log_dir)
        self.purge_step = purge_step
        self.writer: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "writer": None}

    def _open(self) -> Any:
        if self.writer is None and self.log_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:  # a dependency; a stripped environment may lack it
                log.warning("no TensorBoard event files (%s); the JSON logs are complete", exc)
                self.log_dir = None
                return None
            writer: Any = cast(Any, SummaryWriter)  # torch ships it unannotated
            _after_existing_files(Path(self.log_dir))
            self.writer = writer(str(self.log_dir), purge_step=self.purge_step)
        return self.writer

    def add(self, values: Mapping[str, Any], step: int) -> None:
        writer = self._open()
        if writer is None:
            return
        for tag, value in values.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if math.isfinite(float(value)):
                writer.add_scalar(tag, float(value), global_step=int(step))

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class TrainingBoard(ScalarBoard):
    """``elo-train``'s view of ``train_log.jsonl`` (see the module docstring)."""

    def __init__(
        self, out: str | Path, weights: Mapping[str, float], *, start: int, batch_size: int
    ) -> None:
        # resuming after step `start`: hide what a killed run logged past its checkpoint
        super().__init__(Path(out) / SUBDIR, purge_step=start + 1 if start > 0 else None)
        self.batch_size = int(batch_size)
        self.last = time.perf_counter()
        self.add({f"lambda/{k}": float(v) for k, v in weights.items()}, step=start)

    def step(self, rec: Mapping[str, Any]) -> None:
        """One ``train_log.jsonl`` record (``step``, ``loss``, ``lr``, ``raw/<term>``...)."""
        now = time.perf_counter()
        dt, self.last = now - self.last, now
        step = int(rec["step"])
        out: dict[str, Any] = {"train/clips_per_s": self.batch_size / dt if dt > 0 else None}
        for key, value in rec.items():
            if key in ("loss", "lr", "grad_norm"):
                out[f"train/{key}"] = value
            elif key.startswith(("raw/", "weighted/")):
                kind, term = key.split("/", 1)
                out[f"loss_{kind}/{term}"] = value
            elif key.startswith(("log/", "lambda/")):  # lambda/: a λ schedule's step λ
                out[key] = value
            elif key.startswith(("weight/", "logvar/")):  # rlw / uncertainty (weighting.py)
                kind, term = key.split("/", 1)
                out[f"loss_{kind}/{term}"] = value
        self.add(out, step)


class SearchBoard(ScalarBoard):
    """A search's view of ``evaluations.jsonl`` / ``generations.jsonl``."""

    def __init__(self, run_dir: str | Path) -> None:
        super().__init__(Path(run_dir) / SUBDIR)

    def trial(self, record: Mapping[str, Any], done: int) -> None:
        self.add(
            {"trial/fitness": record.get("fitness"), "trial/seconds": record.get("seconds")}, done
        )

    def generation(self, summary: Mapping[str, Any], best: Mapping[str, Any] | None) -> None:
        step = int(summary["generation"]) + 1
        values = {
            "generation/best": summary.get("best"),
            "generation/median": summary.get("median"),
            "generation/failed": summary.get("failed"),
        }
        if best is not None:
            values["best/fitness"] = best.get("fitness")
            weights = best.get("weights") or {}
            values.update({f"best_lambda/{k}": v for k, v in weights.items()})
        self.add(values, step)
        self.flush()
