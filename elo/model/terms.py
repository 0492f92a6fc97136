"""Term keys: the names of the loss terms whose weights the search evolves.

Grammar (one pure parser, one printer)::

    rgb/reconstruction          a task on one modality
    rgb->flow/transfer          a task from one modality to another (ordered pair)
    rgb+audio/contrastive       a task on an unordered modality pair
    distill/flow->rgb@3         distil teacher ``flow`` into student ``rgb`` at level 3

>>> TermKey.parse("rgb->flow/transfer").modalities
('rgb', 'flow')
>>> str(TermKey.parse("distill/audio->rgb@2"))
'distill/audio->rgb@2'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from elo.errors import ConfigError

Arity = Literal["one", "ordered", "pair", "distill"]

_NAME = r"[a-z][a-z0-9_]*"
_PATTERNS: list[tuple[Arity, re.Pattern[str]]] = [
    ("distill", re.compile(rf"^distill/({_NAME})->({_NAME})@(\d+)$")),
    ("ordered", re.compile(rf"^({_NAME})->({_NAME})/({_NAME})$")),
    ("pair", re.compile(rf"^({_NAME})\+({_NAME})/({_NAME})$")),
    ("one", re.compile(rf"^({_NAME})/({_NAME})$")),
]


@dataclass(frozen=True, order=True)
class TermKey:
    task: str
    modalities: tuple[str, ...]
    arity: Arity
    level: int | None = None

    @staticmethod
    def parse(text: str) -> TermKey:
        for arity, pat in _PATTERNS:
            m = pat.match(text)
            if not m:
                continue
            g = m.groups()
            if arity == "distill":
                return TermKey("distill", (g[0], g[1]), "distill", int(g[2]))
            if arity == "one":
                return TermKey(g[1], (g[0],), "one")
            return TermKey(g[2], (g[0], g[1]), arity)
        raise ConfigError(
            f"malformed term key {text!r}; expected e.g. 'rgb/reconstruction', "
            "'rgb->flow/transfer', 'rgb+audio/contrastive' or 'distill/flow->rgb@3'"
        )

    def __str__(self) -> str:
        if self.arity == "distill":
            return f"distill/{self.modalities[0]}->{self.modalities[1]}@{self.level}"
        if self.arity == "one":
            return f"{self.modalities[0]}/{self.task}"
        sep = "->" if self.arity == "ordered" else "+"
        return f"{self.modalities[0]}{sep}{self.modalities[1]}/{self.task}"

    @property
    def teacher(self) -> str:
        """For distillation terms: the modality distilled from."""
        return self.modalities[0]

    @property
    def student(self) -> str:
        return self.modalities[-1]
