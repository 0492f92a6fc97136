"""The clips a search scores its candidates on, and how they are embedded.

* **A held-out slice of the train pool.** The fitness must never see the test split
  (the clips the final probe reports on: selecting the loss on them leaks the test
  into the search), and must not see clips the candidate trained on (a memorising
  encoder would look good). :func:`heldout_videos` picks ``fraction`` of the train
  split's *videos* (all clips of a video together) by a deterministic hash of each
  video's path: the same slice for every candidate, every worker and every rerun.
  :func:`training_loader` is the train split without that slice (what each candidate
  trains on) and :func:`heldout_clips` the slice itself (what the fitness embeds).
  ``search.heldout_split: train`` and ``search.heldout_fraction`` in the config
  select this; another split name (e.g. ``val``) uses that whole split instead;
  ``test`` is refused.
* **BatchNorm statistics that match the weights.** After a short proxy run a
  network's running BatchNorm statistics are still mostly their initial values, so
  eval-mode embeddings are not what the trained weights compute (see
  docs/fitness.md). :func:`fitness_embed` with ``bn="recalibrate"`` (default) resets
  the running statistics of a *copy* of the encoder, estimates them anew over the
  fitness clips (a cumulative average, as "precise BN" does), then embeds in eval
  mode; ``"train"`` embeds with batch statistics; ``"eval"`` keeps the encoder's own.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from elo.errors import DataError
from elo.search.settings import (
    BN_MODES,
    check_heldout_bn,
    check_heldout_fraction,
    check_heldout_split,
)

__all__ = [
    "BN_MODES",
    "centre_crop",
    "check_heldout_split",
    "fitness_embed",
    "heldout_clips",
    "heldout_videos",
    "recalibrate_bn",
    "training_loader",
]


def _rank(rel: str) -> int:
    return zlib.crc32(f"elo-fitness-heldout:{rel}".encode())


def heldout_videos(rels: Iterable[str], fraction: float) -> set[str]:
    """The videos (by path relative to the dataset root) of the held-out slice:
    ``round(fraction * n)`` of the ``n`` distinct videos, at least one and never all of
    them when there are two or more; chosen by a fixed hash of the path, so adding or
    removing other videos moves few of them."""
    fraction = check_heldout_fraction(fraction)
    videos = sorted(set(rels), key=lambda r: (_rank(r), r))
    if len(videos) < 2:
        raise DataError(
            f"the train split has {len(videos)} video(s): a search needs at least 2, one to "
            "hold out for the fitness and one to train on"
        )
    n = min(max(1, round(float(fraction) * len(videos))), len(videos) - 1)
    return set(videos[:n])


def _dataset_rels(dataset: Any) -> list[str]:
    """Each clip's video path (relative to the dataset root), in dataset order."""
    return [str(item[0].rel) for item in dataset.items]


def training_loader(
    cfg: Mapping[str, Any],
    root: Any,
    *,
    fraction: float,
    modalities: Sequence[str],
    batch_size: int,
    seed: int,
    workers: int = 0,
) -> Any:
    """A shuffling DataLoader over the train split minus the held-out slice (pass it to
    :func:`elo.train.trainer.train_model` as ``loader``)."""
    from torch.utils.data import DataLoader, Subset

    from elo.data.datasets import make_loader

    base = make_loader(
        cfg,
        root,
        split="train",
        modalities=list(modalities),
        batch_size=batch_size,
        shuffle=True,
        seed=seed,
        workers=workers,
    )
    rels = _dataset_rels(base.dataset)
    held = heldout_videos(rels, fraction)
    keep = [i for i, r in enumerate(rels) if r not in held]
    return DataLoader(
        Subset(base.dataset, keep),
        batch_size=batch_size,
        shuffle=True,
        collate_fn=base.collate_fn,
        num_workers=base.num_workers,
        worker_init_fn=base.worker_init_fn,
        generator=base.generator,
    )


def heldout_clips(
    cfg: Mapping[str, Any],
    root: Any,
    *,
    split: str = "train",
    fraction: float = 0.2,
    modalities: Sequence[str] = ("rgb",),
) -> dict[str, Any]:
    """The fitness clips as tensors: ``rgb`` N,3,T,H,W, ``labels`` N, each other modality
    asked for, and ``clip_id`` (N strings). ``split="train"``: the held-out slice of the
    train split; any other split but ``test``: all its clips. Clips without RGB are
    dropped."""
    import torch

    from elo.data.datasets import collate, make_loader

    check_heldout_split(split)
    mods = ("rgb", *sorted(set(modalities) - {"rgb"}))
    loader = make_loader(
        cfg, root, split=split, modalities=list(mods), batch_size=64, shuffle=False
    )
    ds = loader.dataset
    if split == "train":
        rels = _dataset_rels(ds)
        held = heldout_videos(rels, fraction)
        loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(ds, [i for i, r in enumerate(rels) if r in held]),
            batch_size=64,
            shuffle=False,
            collate_fn=collate,
        )
    parts: dict[str, list[Any]] = {m: [] for m in (*mods, "labels", "clip_id")}
    for batch in loader:
        keep = batch["present"]["rgb"]  # B bool
        for m in mods:
            parts[m].append(batch[m][keep])  # b,...
        parts["labels"].append(batch["meta"]["label"][keep])  # b
        parts["clip_id"].append(
            [c for c, k in zip(batch["meta"]["clip_id"], keep, strict=True) if k]
        )
    out: dict[str, Any] = {m: torch.cat(parts[m]) for m in (*mods, "labels")}
    out.update(centre_crop(cfg, {m: out[m] for m in mods}))
    out["clip_id"] = [c for chunk in parts["clip_id"] for c in chunk]
    if not len(out["rgb"]):
        raise DataError(f"{root}: the fitness clips ({split}) have no RGB")
    return out


def centre_crop(cfg: Mapping[str, Any], tensors: Mapping[str, Any]) -> dict[str, Any]:
    """Each modality's clips (N,...) cut to the model's input shape
    (:func:`elo.model.modality.input_shapes`) around their centre, as evaluation sees them: the
    cache may hold longer and larger clips (``data.clip.extra_frames`` /
    ``extra_pixels``) that training crops at random."""
    from elo.model.modality import input_shapes

    shapes = input_shapes(cfg)
    out = {}
    for m, x in tensors.items():
        target = shapes.get(m)
        if target is not None and x.dim() == len(target) + 1:
            for d, want in enumerate(target, start=1):
                if x.shape[d] > want:
                    x = x.narrow(d, round(0.5 * (x.shape[d] - want)), want)
        out[m] = x.contiguous()
    return out


def _batchnorms(module: Any) -> list[Any]:
    from torch import nn

    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def fitness_embed(encoder: Any, x: Any, *, bn: str = "recalibrate", batch_size: int = 32) -> Any:
    """Pooled embeddings ``N,D`` of clips ``x`` (N,...) for the fitness, with BatchNorm
    statistics chosen by ``bn`` (see the module docstring). The encoder itself is left
    unchanged (``recalibrate`` works on a copy)."""
    import torch

    from elo.model.network import embed

    check_heldout_bn(bn)
    norms = _batchnorms(encoder)
    if bn == "eval" or not norms:
        with torch.no_grad():
            return embed(encoder, x, batch_size)
    # near-equal chunks: no batch of one clip (batch statistics need several)
    chunks = torch.tensor_split(x, max(1, -(-len(x) // batch_size)))
    device = next((p.device for p in encoder.parameters()), torch.device("cpu"))
    if bn == "train":
        was = encoder.training
        encoder.train()
        try:
            with torch.no_grad():
                parts = [encoder(c.to(device)).embedding.float().cpu() for c in chunks]
        finally:
            encoder.train(was)
        return torch.cat(parts)  # N,D
    with torch.no_grad():
        return embed(recalibrate_bn(encoder, x, batch_size=batch_size), x, batch_size)


def recalibrate_bn(encoder: Any, x: Any, *, batch_size: int = 32) -> Any:
    """A copy of ``encoder`` in eval mode whose BatchNorm running statistics are
    estimated anew over clips ``x`` (N,...): reset, then a cumulative average over
    near-equal chunks of ``x`` run in train mode without gradients. The encoder itself
    is unchanged."""
    import torch

    enc = copy.deepcopy(encoder)
    enc.eval()
    norms = _batchnorms(enc)
    if not norms:
        return enc
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over every batch seen
        m.train()
    device = next((p.device for p in enc.parameters()), torch.device("cpu"))
    with torch.no_grad():
        for c in torch.tensor_split(x, max(1, -(-len(x) // batch_size))):
            enc(c.to(device))
    enc.eval()
    return enc
