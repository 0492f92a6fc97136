"""Evaluate a frozen or fine-tuned RGB encoder on a labeled split: the machinery
behind ``elo-eval`` (linear probe / kNN / fine-tune), plus a parameter-free reference
encoder of hand-made pixel statistics.

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

>>> enc = build_pixel_stats_encoder(grid=2)
>>> enc(torch.zeros(2, 3, 8, 32, 32)).embedding.shape   # B,D with D = 6 * grid**2
torch.Size([2, 24])
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
from elo.evaluation.probe import ProbeResult, knn_probe, linear_probe, result_from_scores
from elo.model.heads import EncoderOutput
from elo.model.modality import Encoder

log = logging.getLogger(__name__)
PIXEL_STATS_BUILDER = "elo.evaluate:build_pixel_stats_encoder"


# -- reference encoder -------------------------------------------------------------------
class PixelStatsEncoder(Encoder):
    """Hand-made features of a clip ``B,C,T,H,W``, per cell of a ``grid × grid`` split:

    * mean of each channel (colour / appearance), ``C·g²``;
    * mean |frame difference| (motion energy), ``g²``;
    * the global Lucas–Kanade flow of the cell (Lucas & Kanade, IJCAI 1981): the
      least-squares ``(u, v)`` solving ``I_x u + I_y v + I_t = 0`` over the cell, ``2·g²``.

    It has no weights, so it is a reference that cannot drift: what any learned
    encoder should beat, and a known-answer encoder for tests.
    """

    def __init__(self, in_channels: int = 3, grid: int = 2) -> None:
        super().__init__()
        self.in_channels, self.grid = int(in_channels), int(grid)
        self.embed_dim = (self.in_channels + 3) * self.grid**2
        self.pyramid_channels = (self.embed_dim,)

    def forward(self, x: torch.Tensor) -> EncoderOutput:  # x: B,C,T,H,W
        if x.dim() != 5 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected B,{self.in_channels},T,H,W, got {tuple(x.shape)}")
        g = self.grid
        colour = F.adaptive_avg_pool3d(x, (1, g, g)).flatten(1)  # B,C*g*g
        gray = x.mean(dim=1)  # B,T,H,W
        if gray.shape[1] < 2:
            motion = torch.zeros(x.shape[0], 3 * g * g, dtype=x.dtype, device=x.device)
        else:
            it = gray[:, 1:] - gray[:, :-1]  # B,T-1,H,W
            mid = 0.5 * (gray[:, 1:] + gray[:, :-1])
            ix = torch.gradient(mid, dim=3)[0]  # B,T-1,H,W
            iy = torch.gradient(mid, dim=2)[0]

            def cell(z: torch.Tensor) -> torch.Tensor:  # B,T-1,H,W -> B,g*g
                return F.adaptive_avg_pool2d(z.mean(dim=1), (g, g)).flatten(1)

            sxx, syy, sxy = cell(ix * ix), cell(iy * iy), cell(ix * iy)
            sxt, syt = cell(ix * it), cell(iy * it)
            det = sxx * syy - sxy * sxy + 1e-6
            u = -(syy * sxt - sxy * syt) / det  # B,g*g
            v = -(sxx * syt - sxy * sxt) / det
            motion = torch.cat([cell(it.abs()), u, v], dim=1)  # B,3*g*g
        emb = torch.cat([colour, motion], dim=1)  # B,D
        return EncoderOutput(pyramid=[emb[:, :, None, None, None]], embedding=emb)


def build_pixel_stats_encoder(*, in_channels: int = 3, grid: int = 2) -> PixelStatsEncoder:
    """Builder of :class:`PixelStatsEncoder` (exportable as builder id ``elo.evaluate:build_pixel_stats_encoder``)."""
    return PixelStatsEncoder(in_channels=in_channels, grid=grid)


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


def _embedding(out: Any) -> torch.Tensor:
    return out.embedding if isinstance(out, EncoderOutput) else out


def _labels_of(meta: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    out = {"label": torch.as_tensor(meta["label"])} if "label" in meta else {}
    for name, v in (meta.get("labels") or {}).items():
        out[name] = torch.as_tensor(v)
    return out


@torch.no_grad()
def embed(
    encoder: nn.Module,
    batches: Iterable[Mapping[str, Any]],
    *,
    modality: str = "rgb",
    device: str = "cpu",
    crops: int = 1,
    crop_size: int | None = None,
    frames: int | None = None,
) -> Embedded:
    """Run ``encoder`` (eval mode) over every batch dict; collect embeddings and labels.
    ``crops`` / ``crop_size``: the rows of each clip's :func:`spatial_crops` (clip ids
    get ``@<crop>`` when ``crops > 1``) of its centred ``frames``."""
    was_training = encoder.training
    encoder.eval()
    xs: list[np.ndarray] = []
    labels: dict[str, list[np.ndarray]] = {}
    ids: list[str] = []
    try:
        for batch in batches:
            x = batch[modality]  # B,C,T,H,W
            keep = torch.as_tensor(batch.get("present", {}).get(modality, torch.ones(len(x))))
            keep = keep.bool()
            meta = batch.get("meta", {})
            cid = meta.get("clip_id", [""] * len(x))
            views = spatial_crops(centre_frames(x, frames), crops, crop_size)
            for j, view in enumerate(views):
                emb = _embedding(encoder(view.to(device)))  # B,D
                xs.append(emb[keep.to(emb.device)].float().cpu().numpy())
                for name, v in _labels_of(meta).items():
                    labels.setdefault(name, []).append(v[keep].cpu().numpy().astype(np.int64))
                tag = f"@{j}" if len(views) > 1 else ""
                ids.extend(f"{c}{tag}" for c, k in zip(cid, keep.tolist(), strict=True) if k)
    finally:
        encoder.train(was_training)
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
            emb = _embedding(enc(batch[modality].to(device)))[keep]  # b,D
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
            loss.backward()
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
    views: dict[str, Any] = {"crops": crops, "crop_size": crop_size}

    def embed_test(enc: nn.Module) -> tuple[np.ndarray, np.ndarray, list[str]]:
        e = embed(
            enc, test_batches, modality=modality, device=device, crops=crops,
            crop_size=crop_size, frames=test_frames,
        )  # fmt: skip
        x, y, groups = select_label(e, label, with_groups=True)  # type: ignore[misc]
        return x, y, groups

    if protocol in ("linear", "knn"):
        xtr, ytr = _xy(embed(encoder, train_batches, modality=modality, device=device), label)
        xte, yte, groups = embed_test(encoder)
        if protocol == "knn":
            res = knn_probe(xtr, ytr, xte, yte, k, num_classes=num_classes, groups=groups)
        else:
            res = linear_probe(
                xtr, ytr, xte, yte, seed=seed, num_classes=num_classes, groups=groups
            )
        res.extra.update(views)
        return res
    if protocol != "finetune":
        raise DataError(f"unknown protocol {protocol!r}; use linear, knn or finetune")
    if num_classes is None:
        raise DataError("finetune needs num_classes")
    enc, head, losses = finetune(
        encoder,
        train_batches,
        label=label,
        num_classes=num_classes,
        epochs=epochs,
        lr=lr,
        seed=seed,
        modality=modality,
        device=device,
    )
    xte, yte, groups = embed_test(enc)
    with torch.no_grad():
        logits = head(torch.from_numpy(xte).to(device))  # N,K
        probs = torch.softmax(logits.double(), dim=1).cpu().numpy()
    res = result_from_scores(probs, np.arange(num_classes), yte, num_classes, groups)
    res.extra.update({"protocol": "finetune", "epochs": epochs, "lr": lr, "train_loss": losses})
    res.extra.update(views)
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
