"""The ELo trainer's batches (elo/train/trainer.py): the training loader read in the
same order from any step on, through :class:`elo.train.loop.ResumableBatchSampler`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from elo.errors import ConfigError
from elo.train.loop import ResumableBatchSampler

if TYPE_CHECKING:
    from elo.train.settings import TrainSettings


def to_device(batch: Any, device: str) -> Any:
    """``batch`` (a tensor or a batch dict; its ``meta`` stays) on ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: (to_device(v, device) if k != "meta" else v) for k, v in batch.items()}
    return batch


def batch_stream(
    cfg: Mapping[str, Any],
    data_root: str | Path | None,
    modalities: list[str],
    t: TrainSettings,
    seed: int,
    start: int,
    loader: Any = None,
) -> Iterator[Any]:
    """Batches for steps ``start, start+1, ...``, in the same order whatever ``start``.

    A map-style dataset (from ``elo.data.datasets.make_loader`` or a given DataLoader) is read
    through :class:`ResumableBatchSampler`; any other iterable is cycled and the first
    ``start`` batches are skipped.
    """
    from torch.utils.data import DataLoader

    if loader is None:
        from elo.data.datasets import make_loader

        loader = make_loader(
            dict(cfg),
            data_root,
            split="train",
            modalities=modalities,
            batch_size=t.batch_size,
            shuffle=True,
            seed=seed,
            workers=t.num_workers,
            uncropped=True,  # the model cuts random windows (data.clip.extra_*)
        )
    dataset = getattr(loader, "dataset", None)
    if isinstance(loader, DataLoader) and dataset is not None and hasattr(dataset, "__len__"):
        n = len(dataset)
        if n == 0:
            raise ConfigError(f"no training clips found under {data_root}")
        bs = min(int(loader.batch_size or t.batch_size), n)
        sampler = ResumableBatchSampler(n, bs, seed=seed, start_step=start)
        yield from DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=loader.collate_fn,
            num_workers=loader.num_workers,
            worker_init_fn=loader.worker_init_fn,
        )
        return
    step = 0
    while True:
        empty = True
        for batch in loader:
            empty = False
            if step >= start:
                yield batch
            step += 1
        if empty:
            raise ConfigError("the training loader yielded no batches")
