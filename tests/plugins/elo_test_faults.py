"""Test-only fitness plug-ins that inject faults into search trials on Ray workers.

The suite puts this folder on ``sys.path`` and ``PYTHONPATH`` (tests/conftest.py). Its
``elo_test_faults-0.dist-info`` declares this module in the ``elo.fitness`` entry-point
group, the way a pip-installed plug-in would, so the fitness registry
(search/fitness/base.py) imports it in every process that looks a fitness kind up: the
test process, an ``elo-search`` the test starts, and the Ray workers they start (which
inherit the environment). The library itself carries no hook for tests.

* ``faulty_synthetic``: the ``synthetic`` stand-in (no training) whose trials take
  ``seconds`` (so that kills land mid-trial and timeouts fire) and kill their worker
  process with exit status 137 (as the kernel's OOM killer would) once: the first trial
  that creates the file ``die_once`` does it.
* ``faulty_zipf``: the Zipf fitness (real training before it) whose first score in the
  run, the one that creates the file ``fail_once``, raises.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from elo.search.fitness.base import FITNESSES
from elo.search.fitness.synthetic import SyntheticFitness
from elo.search.fitness.zipf import ZipfFitness


def _first_to_create(path: str | None) -> bool:
    """Whether this call created ``path`` (atomically: one process wins)."""
    if not path:
        return False
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


@FITNESSES.register()
@dataclass
class FaultySynthetic(SyntheticFitness):
    name: ClassVar[str] = "faulty_synthetic"

    seconds: float = 0.0
    die_once: str | None = None

    def score_weights(
        self,
        weights: Mapping[str, float],
        *,
        fractions: Sequence[float] = (1.0,),
        key: Sequence[int] = (),
    ) -> list[float]:
        if _first_to_create(self.die_once):
            os._exit(137)
        time.sleep(self.seconds)
        return super().score_weights(weights, fractions=fractions, key=key)


@FITNESSES.register()
@dataclass
class FaultyZipf(ZipfFitness):
    name: ClassVar[str] = "faulty_zipf"

    fail_once: str | None = None

    def score(self, embeddings: Any, **context: Any) -> Any:
        if _first_to_create(self.fail_once):
            raise RuntimeError("injected failure in the first trial scored")
        return super().score(embeddings, **context)
