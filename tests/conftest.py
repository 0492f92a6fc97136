"""Shared test fixtures."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

#: every test fails if it writes inside the repository (tests/_source_guard.py)
from _source_guard import source_tree_guard  # noqa: F401

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

#: Test-only plug-ins (tests/plugins/elo_test_faults.py: fitness kinds that make trials
#: slow, fail or lose their worker). On sys.path for this process and on PYTHONPATH for
#: every process it starts, Ray workers included, their entry points register them
#: wherever a fitness is looked up, as a pip-installed plug-in's would.
PLUGINS = str(Path(__file__).resolve().parent / "plugins")
if PLUGINS not in sys.path:
    sys.path.insert(0, PLUGINS)
_paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
os.environ["PYTHONPATH"] = os.pathsep.join([PLUGINS, *(p for p in _paths if p != PLUGINS)])


@pytest.fixture(autouse=True)
def _pinned_torch_threads() -> Iterator[None]:
    """Every test runs torch on one intra-op thread, whatever ran before it.

    ``torch.set_num_threads`` is process-wide, so a test that changed it would change
    the float results (and the learned accuracies) of every later test; reduction order
    also depends on the thread count. Pinning it here makes each test's numbers depend
    on its seed and the CPU only, not on test order or on how many cores the machine has.
    """
    import torch

    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)
