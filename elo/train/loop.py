"""What both trainers' loops share (the ELo trainer of ``elo/train/trainer.py`` and the
baseline trainer of ``baselines/trainer.py``): the resumable batch plan, the learning-rate
schedule, the optimizer factory, atomic checkpoints with the RNG states, the SIGTERM
stop and the progress bar.

A batch plan makes the batch of any step a pure function of (seed, step), so a resumed
run reads the same batches as an uninterrupted one without replaying the steps before.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from elo.errors import ConfigError


class BatchPlan:
    """Epoch ``e`` is a permutation of ``range(n)`` seeded by ``seed * stride + e``.

    ``drop_last=True``: step ``s`` takes batch ``s mod n_batches`` of epoch
    ``s // n_batches`` (``n_batches = n // batch``, the last partial batch dropped).
    ``drop_last=False``: the epochs are one stream of positions and step ``s`` takes
    positions ``s·batch ... (s+1)·batch - 1`` (a batch may straddle two epochs).
    """

    def __init__(self, n: int, batch: int, seed: int, *, stride: int, drop_last: bool) -> None:
        self.n, self.batch, self.seed = n, batch, seed
        self.stride, self.drop_last = stride, drop_last
        self.per_epoch = max(1, n // batch)
        self._perms: dict[int, torch.Tensor] = {}

    def permutation(self, epoch: int) -> torch.Tensor:
        """The order of epoch ``epoch`` (the last one asked is cached)."""
        if epoch not in self._perms:
            g = torch.Generator().manual_seed(self.seed * self.stride + epoch)
            self._perms = {epoch: torch.randperm(self.n, generator=g)}
        return self._perms[epoch]

    def indices(self, step: int) -> torch.Tensor:
        """The dataset indices of step ``step`` (int64, ``batch`` of them)."""
        if self.drop_last:
            epoch, at = divmod(step, self.per_epoch)
            return self.permutation(epoch)[at * self.batch : (at + 1) * self.batch]
        pos = torch.arange(step * self.batch, (step + 1) * self.batch)
        return torch.stack([self.permutation(int(p) // self.n)[int(p) % self.n] for p in pos])


class ResumableBatchSampler:
    """Endless batches of indices from step ``start_step`` on, for a DataLoader's
    ``batch_sampler``: :class:`BatchPlan` with drop-last epochs."""

    def __init__(self, n: int, batch_size: int, *, seed: int, start_step: int = 0) -> None:
        self.n, self.batch_size, self.seed, self.start_step = n, batch_size, seed, start_step
        self.plan = BatchPlan(n, batch_size, seed, stride=7919, drop_last=True)
        self.per_epoch = self.plan.per_epoch

    def batch(self, step: int) -> list[int]:
        return [int(i) for i in self.plan.indices(step).tolist()]

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while True:
            yield self.batch(step)
            step += 1


def lr_at(step: int, total: int, warmup: int, *, base: float = 1.0, floor: float = 0.0) -> float:
    """``base`` times: linear warm-up over ``warmup`` steps, then cosine from 1 to
    ``floor`` at ``total``."""
    if warmup > 0 and step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def optimizer_for(
    groups: list[dict[str, Any]], name: str, lr: float, momentum: float, weight_decay: float
) -> torch.optim.Optimizer:
    """``train.optimizer`` ``name`` (sgd with ``momentum``, or adamw) over parameter
    ``groups`` at ``lr`` with ``weight_decay``."""
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    raise ConfigError(f"train.optimizer {name!r}: choose sgd or adamw")


# -- checkpoints --------------------------------------------------------------------------
def save_state(path: Path, state: Mapping[str, Any]) -> None:
    """``torch.save(state)`` written atomically (elo/rundir.py)."""
    from elo.rundir import atomic_write_bytes

    buf = io.BytesIO()
    torch.save(dict(state), buf)
    atomic_write_bytes(path, buf.getvalue())


def load_state(path: Path) -> dict[str, Any]:
    """What :func:`save_state` wrote (tensors and plain values only)."""
    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file
        raise ConfigError(
            f"{path}: cannot read the checkpoint ({exc}); delete it to start over"
        ) from None
    return state


def rng_state() -> dict[str, Any]:
    """The torch, NumPy and Python RNG states, as tensors and plain values."""
    import random

    import numpy as np

    st: Any = np.random.get_state()
    keys, pos, has_gauss, cached = st[1], st[2], st[3], st[4]
    py = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype("int64")),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": {
            "version": py[0],
            "state": torch.tensor(py[1], dtype=torch.int64),
            "gauss": py[2],
        },
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    import random

    import numpy as np

    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype("uint32"), n["pos"], n["has_gauss"], n["cached"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss"]))


# -- stopping and progress ----------------------------------------------------------------
class StopOnSigterm:
    """SIGTERM sets a flag that the training loop reads between steps (the step in
    progress finishes, then a checkpoint is written); the previous handler comes back
    when training ends. Outside the main thread (a Ray worker) nothing is installed."""

    def __init__(self) -> None:
        import signal
        import threading

        self.requested = False
        self.previous: Any = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True

    def restore(self) -> None:
        import signal

        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
            self.previous = None


def progress_bar(enabled: bool, start: int, total: int, desc: str) -> Any:
    """A tqdm bar from ``start`` to ``total`` steps, or None."""
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=start, desc=desc, unit="step", dynamic_ncols=True)
