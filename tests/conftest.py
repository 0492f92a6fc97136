"""Shared test fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


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
