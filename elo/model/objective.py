"""The weighted objective: which terms exist, their weights, and which are active.

``L = Σ λ_k L_k`` over ordered term keys (see :mod:`elo.model.terms`), every λ ∈ [0, 1].
A term with λ below :data:`ACTIVE_EPS` is not computed at all.

Weights file (what ``elo-train --weights`` reads and ``elo-search`` writes)::

    {"weights": {"rgb/reconstruction": 0.7, "distill/flow->rgb@3": 0.1, ...},
     "...": "any other top-level key is metadata"}

Schedule file (``best_schedule.json`` of a PBT search, docs/search.md): λ that change
during training, each entry from its ``from_step`` (0-based) until the next one::

    {"schedule": [{"from_step": 0, "weights": {...}}, {"from_step": 50, "weights": {...}}],
     "...": "metadata"}
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from elo.errors import ConfigError
from elo.model.terms import TermKey

ACTIVE_EPS = 1e-6


def enumerate_terms(
    modalities: Sequence[str],
    tasks: Sequence[str] | None = None,
    distill_teachers: Sequence[str] = (),
    distill_student: str = "rgb",
    distill_levels: Sequence[int] = (),
) -> list[TermKey]:
    """Every meaningful term for the configured modalities, in a stable order.

    Tasks come in ``tasks`` order (all registered tasks, sorted, when ``None``); for
    each, the modality combinations its arity allows and its ``supports`` accepts, in
    ``modalities`` order; distillation terms come last, teacher-major.
    """
    from elo.model.heads import TASKS

    names = list(tasks) if tasks is not None else task_names()
    out: list[TermKey] = []
    for name in names:
        head = TASKS.get(name)
        combos: list[tuple[str, ...]]
        if head.arity == "distill":
            raise ConfigError(
                f"task {name!r} is distillation: its terms come from objective.distill "
                "(teachers, student, levels), not from the task list"
            )
        if head.arity == "one":
            combos = [(m,) for m in modalities]
        elif head.arity == "ordered":
            combos = [(a, b) for a in modalities for b in modalities if a != b]
        elif head.arity == "pair":
            combos = [(a, b) for i, a in enumerate(modalities) for b in modalities[i + 1 :]]
        else:
            raise ConfigError(f"task {name!r} has unknown arity {head.arity!r}")
        out += [TermKey(name, c, head.arity) for c in combos if head.supports(c)]
    for teacher in distill_teachers:
        if teacher == distill_student:
            continue
        for level in distill_levels:
            out.append(TermKey("distill", (teacher, distill_student), "distill", int(level)))
    return out


def task_names() -> list[str]:
    """Every registered task whose terms the task list enumerates (all but
    distillation, whose terms come from ``objective.distill``), sorted."""
    from elo.model.heads import TASKS

    return [n for n in TASKS.list() if TASKS.get(n).arity != "distill"]


def terms_from_config(cfg: Mapping[str, Any]) -> list[TermKey]:
    """Term keys from the ``objective`` section of a composed config."""
    from elo.config import require
    from elo.model.modality import configured_modalities

    mods = configured_modalities(cfg)
    tasks = require(cfg, "objective.tasks", (str, list, type(None)))
    exclude = set(require(cfg, "objective.exclude", (list, type(None))) or [])
    if tasks in ("all", None):
        tasks = task_names()
    for name in exclude:
        _check_task(name)
    distill = require(cfg, "objective.distill", dict)
    return enumerate_terms(
        mods,
        [t for t in tasks if t not in exclude],
        distill_teachers=[m for m in require(distill, "teachers", list) if m in mods],
        distill_student=require(distill, "student", str),
        distill_levels=require(distill, "levels", list),
    )


def _check_task(name: str) -> None:
    """An unknown name in ``objective.exclude`` is a typo worth an error."""
    from elo.model.heads import TASKS

    TASKS.get(name)


class Weights:
    """λ for every term key, validated; ``active`` lists the terms to compute."""

    def __init__(self, terms: Sequence[TermKey], values: Mapping[str, float]) -> None:
        self.terms = list(terms)
        self.values = validate_weights(values, self.terms)

    @property
    def active(self) -> list[TermKey]:
        return [t for t in self.terms if self.values[str(t)] > ACTIVE_EPS]

    def __getitem__(self, key: TermKey | str) -> float:
        return self.values[str(key)]

    def as_vector(self) -> list[float]:
        return [self.values[str(t)] for t in self.terms]

    @classmethod
    def uniform(cls, terms: Sequence[TermKey], value: float = 1.0) -> Weights:
        return cls(terms, {str(t): value for t in terms})

    @classmethod
    def listed(cls, given: Mapping[str, Any], terms: Sequence[TermKey]) -> Weights:
        """λ for the ``given`` terms, 0 for every other one (an unknown key gets the
        did-you-mean of :func:`validate_weights`)."""
        return cls(terms, {**{str(t): 0.0 for t in terms}, **given})

    @classmethod
    def from_pairs(cls, spec: str, terms: Sequence[TermKey]) -> Weights:
        """``"rgb/speed=1,flow/recon=0.5"``: the listed terms take their λ, every other
        term 0 (``elo-train --weights term=λ,...``)."""
        given: dict[str, float] = {}
        for pair in filter(None, (p.strip() for p in spec.split(","))):
            key, _, raw = pair.partition("=")
            try:
                given[key.strip()] = float(raw)  # no "=": raw is "", a ValueError too
            except ValueError:
                raise ConfigError(
                    f"--weights {spec!r}: {pair!r} is not term=λ (e.g. rgb/speed=1); "
                    "or give a JSON file"
                ) from None
        if not given:
            raise ConfigError(f"--weights {spec!r} names no term (e.g. rgb/speed=1)")
        return cls.listed(given, terms)

    @classmethod
    def only(cls, names: str, terms: Sequence[TermKey]) -> Weights:
        """``"rgb/speed,flow/recon"``: λ 1 on the listed terms, 0 on the others
        (``elo-train --only``)."""
        keys = [k.strip() for k in names.split(",") if k.strip()]
        if not keys:
            raise ConfigError(f"--only {names!r} names no term (e.g. --only rgb/speed)")
        return cls.listed(dict.fromkeys(keys, 1.0), terms)

    def to_json(self, **meta: Any) -> dict[str, Any]:
        return {**meta, "weights": {str(t): self.values[str(t)] for t in self.terms}}

    @classmethod
    def load(cls, path: str | Path, terms: Sequence[TermKey]) -> Weights:
        path = Path(path)
        return cls.from_doc(_read_json(path), terms, path)

    @classmethod
    def from_doc(cls, doc: Any, terms: Sequence[TermKey], path: str | Path) -> Weights:
        """The weights of a parsed weights file ``doc`` (``path`` names it in errors)."""
        if not isinstance(doc, dict) or not isinstance(doc.get("weights"), dict):
            raise ConfigError(
                f'{path}: expected {{"weights": {{"<term key>": λ, ...}}}}; '
                "see `elo-train --help` for the format"
            )
        try:
            return cls(terms, doc["weights"])
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"weights file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None


class WeightSchedule:
    """λ that change during training: ``entries`` are ``(from_step, Weights)`` pairs,
    the first from step 0, steps increasing; :meth:`at` is the λ of a 0-based step.
    The model is built with :attr:`union` (each term's largest λ), so a term active in
    any entry has its head throughout."""

    def __init__(self, entries: Sequence[tuple[int, Weights]]) -> None:
        steps = [int(s) for s, _ in entries]
        if (
            not steps
            or steps[0] != 0
            or any(a >= b for a, b in zip(steps, steps[1:], strict=False))
        ):
            raise ConfigError(f"schedule steps must start at 0 and increase, got from_step {steps}")
        self.entries = [(int(s), w) for s, w in entries]
        self.terms = list(self.entries[0][1].terms)
        self.union = Weights(
            self.terms,
            {str(t): max(w.values[str(t)] for _, w in self.entries) for t in self.terms},
        )

    def at(self, step: int) -> Weights:
        """The λ of 0-based ``step``: the last entry starting at or before it."""
        import bisect

        i = bisect.bisect_right([s for s, _ in self.entries], int(step)) - 1
        return self.entries[max(0, i)][1]

    def to_json(self, **meta: Any) -> dict[str, Any]:
        rows = [{"from_step": s, "weights": w.to_json()["weights"]} for s, w in self.entries]
        return {**meta, "schedule": rows}

    @classmethod
    def from_doc(cls, doc: Any, terms: Sequence[TermKey], path: str | Path) -> WeightSchedule:
        rows = doc.get("schedule") if isinstance(doc, dict) else None
        if not (
            isinstance(rows, list)
            and rows
            and all(isinstance(r, dict) and isinstance(r.get("weights"), dict) for r in rows)
            and all(type(r.get("from_step")) is int for r in rows)
        ):
            raise ConfigError(
                f'{path}: expected {{"schedule": [{{"from_step": 0, "weights": {{...}}}}, ...]}}'
                " (a list of λ, each with the 0-based step it starts at)"
            )
        try:
            return cls([(r["from_step"], Weights(terms, r["weights"])) for r in rows])
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None


def load_weights_file(path: str | Path, terms: Sequence[TermKey]) -> Weights | WeightSchedule:
    """What ``elo-train --weights`` reads: a weights file, or a schedule file (a
    ``schedule`` key, e.g. a PBT search's ``best_schedule.json``)."""
    path = Path(path)
    doc = _read_json(path)
    if isinstance(doc, dict) and "schedule" in doc:
        return WeightSchedule.from_doc(doc, terms, path)
    return Weights.from_doc(doc, terms, path)


def weights_from_argument(arg: str, terms: Sequence[TermKey]) -> Weights | WeightSchedule:
    """``elo-train --weights``: a weights or schedule file (:func:`load_weights_file`),
    or ``term=λ`` pairs (:meth:`Weights.from_pairs`) when ``arg`` names no file."""
    if Path(arg).exists():
        return load_weights_file(arg, terms)
    if "=" in arg:
        return Weights.from_pairs(arg, terms)
    raise ConfigError(
        f"weights file not found: {arg}; give a JSON file or term=λ pairs "
        "(e.g. rgb/speed=1; `elo-train --list-terms` prints the terms)"
    )


def validate_weights(values: Mapping[str, Any], terms: Sequence[TermKey]) -> dict[str, float]:
    known = [str(t) for t in terms]
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            TermKey.parse(str(key))  # a malformed key gets the grammar message
            raise ConfigError(
                f"unknown term {key!r}{hint}; it is not in this config's objective "
                f"({len(known)} terms: `elo-train --list-terms` prints them)"
            )
    missing = [k for k in known if k not in values]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise ConfigError(
            f"missing weight for term {missing[0]!r}"
            + (f" (also {', '.join(missing[1:3])}{more})" if len(missing) > 1 else "")
            + "; give every term a λ in [0, 1] (0 turns it off)"
        )
    out: dict[str, float] = {}
    for k in known:
        v = values[k]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ConfigError(f"weight for term {k!r} must be a number in [0, 1], got {v!r}")
        if not 0.0 <= float(v) <= 1.0:
            raise ConfigError(f"weight for term {k!r} is {v}, outside [0, 1]")
        out[k] = float(v)
    return out
