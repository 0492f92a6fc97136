"""Evaluate a frozen or fine-tuned RGB encoder on a labeled split: the machinery
behind ``elo-eval`` (linear probe / kNN / fine-tune). The parameter-free reference
encoder of hand-made pixel statistics is in ``elo/evaluation/pixel_stats.py``.

Protocols (as in ELo, arXiv 2002.12177, §4, and the self-supervised video
literature it compares with):

* ``linear``: frozen embeddings, standardized logistic regression
  (:func:`elo.evaluation.probe.linear_probe`; C chosen by balanced accuracy on held-out train).
* ``knn``: frozen embeddings, weighted cosine kNN (:func:`elo.evaluation.probe.knn_probe`).
* ``finetune``: encoder + a linear head trained end to end with cross-entropy for a
  few epochs (:func:`finetune`), then scored on the test split.

Testing as the field reports it (e.g. Feichtenhofer et al., SlowFast, ICCV 2019;
Alwassel et al., XDC, NeurIPS 2020): every test video is scored by the mean of the
class scores (probabilities, normalized kNN votes or softmax) of its clips (the loader's
``data.clip.per_video`` uniformly spaced windows) times ``crops`` spatial crops
(:func:`spatial_crops`); accuracy counts videos. Train clips use the centre crop.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from elo.errors import DataError
from elo.evaluation.pixel_stats import PIXEL_STATS_BUILDER as PIXEL_STATS_BUILDER
from elo.evaluation.pixel_stats import PixelStatsEncoder as PixelStatsEncoder
from elo.evaluation.pixel_stats import build_pixel_stats_encoder as build_pixel_stats_encoder
from elo.evaluation.probe import ProbeResult, knn_probe, linear_probe, result_from_scores
from elo.model.heads import EncoderOutput
from elo.model.network import embed

log = logging.getLogger(__name__)


# -- embedding a split -------------------------------------------------------------------
def centre_frames(x: torch.Tensor, frames: int | None) -> torch.Tensor:
    """The centred ``frames`` of clips ``B,C,T,H,W`` (all of them when ``None`` or
    ``T <= frames``)."""
    t = int(x.shape[2])
    if frames is None or t <= frames:
        return x
    lo = (t - int(frames)) // 2
    return x[:, :, lo : lo + int(frames)]


def spatial_crops(x: torch.Tensor, n: int, size: int | None) -> list[torch.Tensor]:
    """``n`` square crops of side ``size`` of clips ``B,C,T,H,W``: one centred crop for
    ``n = 1``, else ``n`` crops evenly spaced from the left edge to the right edge,
    centred vertically (the field's 3-crop test spans the longer side this way).
    ``size=None`` (or the full side) with ``n = 1`` returns the clip itself.

    >>> [c.shape[-1] for c in spatial_crops(torch.zeros(1, 3, 2, 8, 8), 3, 6)]
    [6, 6, 6]
    """
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if size is None or (n == 1 and size >= min(h, w)):
        return [x]
    size = min(int(size), h, w)
    top = (h - size) // 2
    lefts = [(w - size) // 2] if n == 1 else [round(i * (w - size) / (n - 1)) for i in range(n)]
    return [x[..., top : top + size, left : left + size] for left in lefts]


class CroppedBatches:
    """Re-iterable view of ``batches`` with ``modality`` centre-cropped to ``size``."""

    def __init__(self, batches: Iterable[Mapping[str, Any]], modality: str, size: int | None):
        self.batches, self.modality, self.size = batches, modality, size

    def __iter__(self) -> Any:
        for batch in self.batches:
            if self.size is None:
                yield batch
            else:
                (crop,) = spatial_crops(batch[self.modality], 1, self.size)
                yield {**batch, self.modality: crop}


@dataclass
class Embedded:
    """Embeddings of one split and their labels (rows where the modality is present);
    with several crops one row per (clip, crop). ``groups`` is each row's video."""

    x: np.ndarray  # N,D float32
    labels: dict[str, np.ndarray] = field(default_factory=dict)  # name -> N int64
    clip_ids: list[str] = field(default_factory=list)

    @property
    def groups(self) -> list[str]:
        """The video of each row: its clip id without ``#clip`` and ``@crop``."""
        return [c.split("@", 1)[0].rsplit("#", 1)[0] for c in self.clip_ids]


def _pooled(out: Any) -> torch.Tensor:
    """The ``B,D`` embedding of an encoder's output, autograd graph kept (fine-tuning);
    graph-free embeddings come from :func:`elo.model.network.embed`."""
    return out.embedding if isinstance(out, EncoderOutput) else out


def _labels_of(meta: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    out = {"label": torch.as_tensor(meta["label"])} if "label" in meta else {}
    for name, v in (meta.get("labels") or {}).items():
        out[name] = torch.as_tensor(v)
    return out


def embed_split(
    encoder: nn.Module,
    batches: Iterable[Mapping[str, Any]],
    *,
    modality: str = "rgb",
    device: str = "cpu",
    crops: int = 1,
    crop_size: int | None = None,
    frames: int | None = None,
) -> Embedded:
    """Embed every batch dict (:func:`elo.model.network.embed`: eval mode, no graph) and
    collect embeddings and labels. ``crops`` / ``crop_size``: the rows of each clip's
    :func:`spatial_crops` (clip ids get ``@<crop>`` when ``crops > 1``) of its centred
    ``frames``."""
    xs: list[np.ndarray] = []
    labels: dict[str, list[np.ndarray]] = {}
    ids: list[str] = []
    for batch in batches:
        x = batch[modality]  # B,C,T,H,W
        keep = torch.as_tensor(batch.get("present", {}).get(modality, torch.ones(len(x))))
        keep = keep.bool()
        meta = batch.get("meta", {})
        cid = meta.get("clip_id", [""] * len(x))
        views = spatial_crops(centre_frames(x, frames), crops, crop_size)
        for j, view in enumerate(views):
            emb = embed(encoder, view, max(1, len(view)), device=device)  # B,D float32 CPU
            xs.append(emb[keep.cpu()].numpy())
            for name, v in _labels_of(meta).items():
                labels.setdefault(name, []).append(v[keep].cpu().numpy().astype(np.int64))
            tag = f"@{j}" if len(views) > 1 else ""
            ids.extend(f"{c}{tag}" for c, k in zip(cid, keep.tolist(), strict=True) if k)
    if not xs:
        raise DataError("no clips to embed: the split is empty")
    return Embedded(np.concatenate(xs), {k: np.concatenate(v) for k, v in labels.items()}, ids)


def select_label(
    e: Embedded, label: str, *, with_groups: bool = False
) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, list[str]]:
    """``(x, y)`` for label column ``label`` with unlabeled (−1) rows dropped (and the
    rows' videos with ``with_groups``)."""
    if label not in e.labels:
        known = ", ".join(sorted(e.labels)) or "(none)"
        raise DataError(f"label column {label!r} not in this dataset; known: {known}")
    y = e.labels[label]
    keep = y >= 0
    if not keep.any():
        raise DataError(f"label column {label!r} has no labeled clips in this split")
    if with_groups:
        return e.x[keep], y[keep], [g for g, k in zip(e.groups, keep, strict=True) if k]
    return e.x[keep], y[keep]


# -- fine-tuning --------------------------------------------------------------------------
def _batch_labels(batch: Mapping[str, Any], label: str) -> torch.Tensor:
    labels = _labels_of(batch.get("meta", {}))
    if label not in labels:
        raise DataError(f"label column {label!r} not in this dataset; known: {sorted(labels)}")
    return labels[label].long()


def finetune(
    encoder: nn.Module,
    train_batches: Iterable[Mapping[str, Any]],
    *,
    label: str,
    num_classes: int,
    epochs: int = 5,
    lr: float = 1e-3,
    encoder_lr_scale: float = 0.1,
    seed: int = 0,
    modality: str = "rgb",
    device: str = "cpu",
) -> tuple[nn.Module, nn.Linear, list[float]]:
    """Train a copy of ``encoder`` plus a linear head with cross-entropy (AdamW; the
    encoder at ``lr * encoder_lr_scale``). Returns ``(encoder, head, epoch losses)``;
    the caller's encoder is not modified."""
    torch.manual_seed(seed)
    enc = copy.deepcopy(encoder).to(device).train()
    dim = int(getattr(enc, "embed_dim", 0)) or None
    head: nn.Linear | None = nn.Linear(dim, num_classes).to(device) if dim else None
    losses: list[float] = []
    opt: torch.optim.Optimizer | None = None
    for _ in range(epochs):
        total, n = 0.0, 0
        for batch in train_batches:
            y = _batch_labels(batch, label).to(device)
            present = batch.get("present", {}).get(modality)
            keep = (y >= 0) & (
                torch.as_tensor(present).bool().to(device) if present is not None else True
            )
            if not keep.any():
                continue
            emb = _pooled(enc(batch[modality].to(device)))[keep]  # b,D
            if head is None:  # embed_dim unknown until the first forward
                head = nn.Linear(emb.shape[1], num_classes).to(device)
            if opt is None:
                groups = [{"params": head.parameters(), "lr": lr}]
                enc_params = [p for p in enc.parameters() if p.requires_grad]
                if enc_params:
                    groups.append({"params": enc_params, "lr": lr * encoder_lr_scale})
                opt = torch.optim.AdamW(groups, weight_decay=1e-4)
            loss = F.cross_entropy(head(emb), y[keep])
            opt.zero_grad()
            torch.autograd.backward(loss)
            opt.step()
            total, n = total + float(loss.detach()) * int(keep.sum()), n + int(keep.sum())
        losses.append(total / max(n, 1))
    if head is None:
        raise DataError(f"no labeled training clips for label {label!r}")
    return enc.eval(), head.eval(), losses


# -- one evaluation ------------------------------------------------------------------------
def _xy(e: Embedded, label: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = select_label(e, label)[:2]
    return x, y


def evaluate(
    encoder: nn.Module,
    train_batches: Iterable[Mapping[str, Any]],
    test_batches: Iterable[Mapping[str, Any]],
    *,
    protocol: str = "linear",
    label: str = "label",
    num_classes: int | None = None,
    seed: int = 0,
    k: int = 20,
    epochs: int = 5,
    lr: float = 1e-3,
    modality: str = "rgb",
    device: str = "cpu",
    crops: int = 1,
    crop_size: int | None = None,
    test_frames: int | None = None,
) -> ProbeResult:
    """Score ``encoder`` on the test split with ``protocol`` (linear, knn, finetune).

    Each test video's prediction averages the scores of all its clips and ``crops``
    crops of side ``crop_size`` (module docstring); train clips are centre-cropped to
    ``crop_size`` (``None``: the whole clip, with ``crops = 1`` only). ``test_frames``:
    test clips longer than the model's clip (a cache with ``data.clip.extra_frames``)
    are cut to their centred ``test_frames``."""
    if crops < 1:
        raise DataError(f"--crops must be >= 1, got {crops}")
    if crops > 1 and crop_size is None:
        raise DataError("several crops need a crop size smaller than the clip")
    train_batches = CroppedBatches(train_batches, modality, crop_size)
    test = _TestViews(test_batches, label, modality, device, crops, crop_size, test_frames)
    if protocol in ("linear", "knn"):
        xtr, ytr = _xy(embed_split(encoder, train_batches, modality=modality, device=device), label)
        xte, yte, groups = test.embedded(encoder)
        if protocol == "knn":
            res = knn_probe(xtr, ytr, xte, yte, k, num_classes=num_classes, groups=groups)
        else:
            res = linear_probe(
                xtr, ytr, xte, yte, seed=seed, num_classes=num_classes, groups=groups
            )
    elif protocol != "finetune":
        raise DataError(f"unknown protocol {protocol!r}; use linear, knn or finetune")
    elif num_classes is None:
        raise DataError("finetune needs num_classes")
    else:
        res = _finetuned(
            encoder, train_batches, test, num_classes=num_classes, epochs=epochs, lr=lr, seed=seed
        )
    res.extra.update({"crops": crops, "crop_size": crop_size})
    return res


@dataclass
class _TestViews:
    """The test split as :func:`evaluate` embeds it: every clip x crop, with its video."""

    batches: Iterable[Mapping[str, Any]]
    label: str
    modality: str
    device: str
    crops: int
    crop_size: int | None
    frames: int | None

    def embedded(self, enc: nn.Module) -> tuple[np.ndarray, np.ndarray, list[str]]:
        e = embed_split(
            enc,
            self.batches,
            modality=self.modality,
            device=self.device,
            crops=self.crops,
            crop_size=self.crop_size,
            frames=self.frames,
        )
        x, y, groups = select_label(e, self.label, with_groups=True)  # type: ignore[misc]
        return x, y, groups


def _finetuned(
    encoder: nn.Module,
    train_batches: Iterable[Mapping[str, Any]],
    test: _TestViews,
    *,
    num_classes: int,
    epochs: int,
    lr: float,
    seed: int,
) -> ProbeResult:
    """The ``finetune`` protocol: :func:`finetune`, then the head's softmax per test view."""
    enc, head, losses = finetune(
        encoder,
        train_batches,
        label=test.label,
        num_classes=num_classes,
        epochs=epochs,
        lr=lr,
        seed=seed,
        modality=test.modality,
        device=test.device,
    )
    xte, yte, groups = test.embedded(enc)
    with torch.no_grad():
        logits = head(torch.from_numpy(xte).to(test.device))  # N,K
        probs = torch.softmax(logits.double(), dim=1).cpu().numpy()
    res = result_from_scores(probs, np.arange(num_classes), yte, num_classes, groups)
    res.extra.update({"protocol": "finetune", "epochs": epochs, "lr": lr, "train_loss": losses})
    return res


# -- reporting -----------------------------------------------------------------------------
def save_confusion_png(
    confusion: np.ndarray, class_names: Sequence[str], path: str | Path, title: str = ""
) -> Path:
    """Row-normalized confusion matrix (rows = true class) as a PNG, written atomically."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from elo.rundir import atomic_write_bytes

    conf = np.asarray(confusion, dtype=np.float64)
    norm = conf / np.maximum(conf.sum(axis=1, keepdims=True), 1)
    n = len(class_names)
    size = min(4 + 0.35 * n, 20)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    im = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(n), labels=class_names, rotation=90 if n > 6 else 0)
    ax.set_yticks(range(n), labels=class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if conf[i, j]:
                    ax.text(
                        j,
                        i,
                        str(int(conf[i, j])),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black",
                    )
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())
