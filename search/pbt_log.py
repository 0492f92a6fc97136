"""The evaluation log of a population-based search (search/pbt.py) and what is read
back from it: the lineage of a member and the λ schedule along it.

``evaluations.jsonl`` holds one line per member and interval (the source of truth)::

    {"member": 2, "interval": 3, "step": 150, "weights": {term: λ}, "fitness": -0.12,
     "status": "ok" | "nonfinite" | "collapsed" | "error",
     "parent": {"member": 0, "interval": 2},   # whose state the interval started from
     "copied": true, "seconds": 41.2, "metrics": {...}, "trial_id": "...", "time": ...}

``parent`` is ``null`` at interval 1 (the warm-start trunk); ``copied`` says the
member exploited ``parent.member`` at the boundary before this interval. Rejected
intervals have the worst fitness. :func:`log_callback` writes it from Ray Tune's
results, in the driver, once per (member, interval): an interval that Tune runs again
after ``Tuner.restore`` (it finished after the experiment's last snapshot) is not
logged twice; it is recorded in ``pbt_reruns.jsonl`` with whether its fitness and
digests equal the logged ones.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from elo.rundir import append_jsonl, read_jsonl

EVALUATIONS = "evaluations.jsonl"
RERUNS = "pbt_reruns.jsonl"

#: echo functions of the runs in this process, by run directory: Tune pickles its
#: callbacks with the experiment, so the one it restores looks its echo up here
ECHO: dict[str, Callable[[str], None]] = {}

_SAME = ("fitness", "digest_end_model", "digest_end_optimizer")


_TUNE_KEYS = {"timestamp", "checkpoint_dir_name", "done", "training_iteration", "date"}
_TUNE_KEYS |= {"time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip"}
_TUNE_KEYS |= {"time_since_restore", "iterations_since_restore", "experiment_tag", "config"}
_TUNE_KEYS |= {"trial_id", "should_checkpoint"}


def record_of(result: Mapping[str, Any], terms: list[str]) -> dict[str, Any]:
    """The log line of one member's report (search/pbt_member.py)."""
    skip = {"fitness", "step", "interval", "member", "parent_member", "parent_interval"}
    skip |= {"rejected", "lam", "seconds", "details", "error_msg"}
    k = int(result["interval"])
    pm, pi = int(result["parent_member"]), int(result["parent_interval"])
    metrics = {m: v for m, v in result.items() if m not in skip | _TUNE_KEYS and _plain(v)}
    rec: dict[str, Any] = {
        "member": int(result["member"]),
        "interval": k,
        "step": int(result["step"]),
        "weights": dict(zip(terms, map(float, result["lam"]), strict=True)),
        "fitness": float(result["fitness"]),
        "status": str(result.get("rejected") or "ok"),
        "parent": None if pi < 1 else {"member": pm, "interval": pi},
        "copied": pi >= 1 and pm != int(result["member"]),
        "seconds": float(result.get("seconds", 0.0)),
        "metrics": metrics,
        "details": dict(result.get("details") or {}),
        "trial_id": str(result.get("trial_id", "")),
        "time": time.time(),  # when it was logged
    }
    if result.get("error_msg"):
        rec["error"] = str(result["error_msg"])
    return rec


def _plain(v: Any) -> bool:
    """A value the log keeps: a string, bool or finite number (JSON has no NaN)."""
    if isinstance(v, float):
        return math.isfinite(v)
    return isinstance(v, int | str | bool)


def log_callback(run_dir: Path, terms: list[str], intervals: int) -> Any:
    """A Ray Tune callback appending each member's report to ``evaluations.jsonl``
    (and a TensorBoard view under ``tensorboard/member-<m>``), once per interval."""
    from ray.tune import Callback

    class PBTLog(Callback):
        def __init__(self) -> None:
            self.run_dir, self.terms, self.intervals = str(run_dir), list(terms), intervals
            self.boards: dict[int, Any] = {}

        def __getstate__(self) -> dict[str, Any]:
            return {**self.__dict__, "boards": {}}

        def on_trial_result(
            self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
        ) -> None:
            if "interval" not in result or "lam" not in result:
                return
            rec = record_of(result, self.terms)
            path = Path(self.run_dir) / EVALUATIONS
            logged = {(r["member"], r["interval"]): r for r in read_jsonl(path)}
            key = (rec["member"], rec["interval"])
            if key in logged:  # re-run after a restore: compare, do not log again
                old = logged[key]
                same = all(_value(old, k) == _value(rec, k) for k in _SAME)
                append_jsonl(
                    Path(self.run_dir) / RERUNS,
                    {"member": key[0], "interval": key[1], "same": same},
                )
                return
            append_jsonl(path, rec)
            self._board(rec)
            echo = ECHO.get(self.run_dir, print)
            echo(progress_line(rec, len(logged) + 1, self.intervals))

        def _board(self, rec: Mapping[str, Any]) -> None:
            from elo.train.tblog import SUBDIR, ScalarBoard

            m = int(rec["member"])
            if m not in self.boards:
                self.boards[m] = ScalarBoard(Path(self.run_dir) / SUBDIR / f"member-{m}")
            values = {"pbt/fitness": rec["fitness"] if rec["status"] == "ok" else None}
            values["pbt/copied"] = float(rec["copied"])
            values.update({f"lambda/{t}": v for t, v in rec["weights"].items()})
            self.boards[m].add(values, int(rec["step"]))
            self.boards[m].flush()

        def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
            for board in self.boards.values():
                board.close()

    return PBTLog()


def _value(rec: Mapping[str, Any], key: str) -> Any:
    return rec["fitness"] if key == "fitness" else (rec.get("metrics") or {}).get(key)


def progress_line(rec: Mapping[str, Any], done: int, intervals: int) -> str:
    """``member 2 interval 3/6 (step 150): fitness -0.1234, copied member 0``."""
    fit = (
        f"fitness {rec['fitness']:.4f}" if rec["status"] == "ok" else f"rejected ({rec['status']})"
    )
    copied = f", copied member {rec['parent']['member']}" if rec["copied"] else ""
    return (
        f"pbt: member {rec['member']} interval {rec['interval']}/{intervals} "
        f"(step {rec['step']}): {fit}{copied}  [{done} reports]"
    )


def by_key(records: Iterable[Mapping[str, Any]]) -> dict[tuple[int, int], dict[str, Any]]:
    """Records by (member, interval)."""
    return {(int(r["member"]), int(r["interval"])): dict(r) for r in records}


def lineage(
    records: Iterable[Mapping[str, Any]], member: int, interval: int
) -> list[dict[str, Any]]:
    """The records whose states led to (``member``, ``interval``), first interval
    first: each record's parent is the previous one."""
    keyed = by_key(records)
    out: list[dict[str, Any]] = []
    key: tuple[int, int] | None = (member, interval)
    while key is not None:
        if key not in keyed:
            raise KeyError(f"the log has no record of member {key[0]}, interval {key[1]}")
        rec = keyed[key]
        out.append(rec)
        p = rec.get("parent")
        key = None if p is None else (int(p["member"]), int(p["interval"]))
    return out[::-1]


def best_final(records: Iterable[Mapping[str, Any]], intervals: int) -> dict[str, Any] | None:
    """The healthy record of the last interval with the highest fitness (the best
    member), or None when no member ended healthy."""
    last = [dict(r) for r in records if int(r["interval"]) == intervals and r["status"] == "ok"]
    return max(last, key=lambda r: (r["fitness"], -int(r["member"]))) if last else None


def schedule_of(chain: list[dict[str, Any]], interval: int) -> list[tuple[int, dict[str, float]]]:
    """``(from_step, λ)`` of each interval of a lineage (:func:`lineage`): interval
    ``k`` starts at step ``(k - 1) · interval``."""
    return [((int(r["interval"]) - 1) * interval, dict(r["weights"])) for r in chain]
