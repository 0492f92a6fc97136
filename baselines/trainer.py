"""Standalone image-side training of BYOL / SimSiam: ``elo-train --objective byol
--data DIR``.

Reads ``configs/baseline/<objective>.yaml`` (or ``--config PATH``), loads the images
or video frames of ``DIR`` (:mod:`baselines.frames`), trains an image encoder
(:mod:`baselines.image_encoder`) with the two-view pipelines of
:mod:`baselines.augment`, and writes to ``--out``::

    config.yaml        resolved config
    metrics.jsonl      one line per log step: loss, lr, predictor_lr (SimSiam), τ (BYOL),
                       collapse_std
    checkpoint.pt      online + target weights, optimizer state, step (``--resume``)
    summary.json       final figures: collapse monitor, kNN accuracy when labeled
    final/             exported encoder: ``elo.load_encoder(OUT / "final")``

Each step's batch indices and augmentation seeds are functions of (seed, step), so a
resumed run continues exactly where the checkpoint left it.
"""

from __future__ import annotations

import argparse
import io
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from elo.errors import ConfigError

log = logging.getLogger(__name__)
OBJECTIVES = ("byol", "simsiam")


def load_baseline_config(
    objective: str, config: str | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> dict[str, Any]:
    """``configs/baseline/<objective>.yaml``, or ``config`` (a path or a name in
    ``configs/baseline``); ``key=value`` overrides must name existing keys."""
    from elo.config import apply_overrides, compose, configs_dir, resolve_config_path

    if objective not in OBJECTIVES:
        raise ConfigError(f"--objective {objective!r}: choose one of {', '.join(OBJECTIVES)}")
    name = config
    if not name or not (Path(name).suffix in (".yaml", ".yml") or name in _baseline_names()):
        name = objective  # e.g. the CLI default "demo" names a video experiment
    cfg = compose(resolve_config_path(name, "baseline"))
    cfg = apply_overrides(cfg, list(overrides))
    if cfg.get("objective") != objective:
        raise ConfigError(
            f"config {name!r} is for objective {cfg.get('objective')!r}, not {objective!r}; "
            f"see {configs_dir() / 'baseline'}"
        )
    return cfg


def _baseline_names() -> set[str]:
    from elo.config import configs_dir

    return {p.stem for p in (configs_dir() / "baseline").glob("*.yaml")}


def build_model(cfg: dict[str, Any]) -> nn.Module:
    """The standalone :class:`~baselines.byol.BYOL` or :class:`~baselines.simsiam.SimSiam`."""
    from baselines.byol import BYOL
    from baselines.image_encoder import build_image_encoder
    from baselines.simsiam import SimSiam

    encoder = build_image_encoder(**cfg["encoder"])
    obj = cfg["objective"]
    sec = dict(cfg[obj])
    if obj == "byol":
        return BYOL(encoder, encoder.embed_dim, **sec)
    sec.pop("fix_predictor_lr", None)
    return SimSiam(encoder, encoder.embed_dim, **sec)


def build_optimizer(model: nn.Module, cfg: dict[str, Any]) -> torch.optim.Optimizer:
    """SGD (momentum) or AdamW at ``lr · batch / 256``; SimSiam's predictor group is
    flagged ``fix_lr`` (kept at the initial lr, official ``--fix-pred-lr``)."""
    tr = cfg["train"]
    lr = float(tr["lr"]) * int(tr["batch_size"]) / 256
    if cfg["objective"] == "simsiam":
        groups = model.param_groups(bool(cfg["simsiam"].get("fix_predictor_lr", True)))  # type: ignore[operator]
    else:
        params = [p for p in model.parameters() if p.requires_grad]
        groups = [{"params": params, "fix_lr": False}]
    wd = float(tr["weight_decay"])
    if tr["optimizer"] == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=float(tr["momentum"]), weight_decay=wd)
    if tr["optimizer"] == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=wd)
    raise ConfigError(f"train.optimizer {tr['optimizer']!r}: choose sgd or adamw")


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warm-up then cosine decay to 0."""
    if warmup > 0 and step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


class BatchPlan:
    """Epoch permutations seeded by (seed, epoch): ``indices(step)`` is pure."""

    def __init__(self, n: int, batch: int, seed: int) -> None:
        self.n, self.batch, self.seed = n, batch, seed
        self._perms: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perms = {epoch: torch.randperm(self.n, generator=g)}
        return self._perms[epoch]

    def indices(self, step: int) -> torch.Tensor:
        pos = torch.arange(step * self.batch, (step + 1) * self.batch)
        return torch.stack([self._perm(int(p) // self.n)[int(p) % self.n] for p in pos])

    def aug_generator(self, step: int) -> torch.Generator:
        return torch.Generator().manual_seed((self.seed + 7) * 2_000_003 + step)


def save_checkpoint(path: Path, model: nn.Module, opt: torch.optim.Optimizer, step: int) -> None:
    from elo.rundir import atomic_write_bytes

    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path, model: nn.Module, opt: torch.optim.Optimizer) -> int:
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    return int(state["step"])


def embed_images(encoder: nn.Module, images: torch.Tensor, device: str, batch: int = 256):  # type: ignore[no-untyped-def]
    """Embeddings N,D of uint8 images N,3,S,S (normalised, no augmentation)."""
    from baselines.augment import normalize

    was = encoder.training
    encoder.eval()
    out = []
    with torch.no_grad():
        for lo in range(0, len(images), batch):
            x = normalize(images[lo : lo + batch].float().div(255)).to(device)
            out.append(encoder(x).embedding.cpu())
    encoder.train(was)
    return torch.cat(out)


def knn_eval(
    encoder: nn.Module, images: torch.Tensor, labels: torch.Tensor, cfg: dict[str, Any], device: str
) -> float:
    """kNN top-1 (``elo.evaluation.probe``) on a stratified split of the labeled images."""
    from sklearn.model_selection import train_test_split

    from elo.evaluation.probe import knn_accuracy

    idx = torch.arange(len(labels)).numpy()
    tr, te = train_test_split(
        idx, test_size=float(cfg["eval"]["holdout"]), stratify=labels.numpy(), random_state=0
    )
    feats = embed_images(encoder, images, device)
    return knn_accuracy(feats[tr], labels[tr], feats[te], labels[te], k=int(cfg["eval"]["knn_k"]))


def fit(
    cfg: dict[str, Any],
    images: torch.Tensor,
    out: Path,
    *,
    labels: torch.Tensor | None = None,
    device: str = "cpu",
    resume: bool = False,
) -> dict[str, Any]:
    """Train on ``images`` (N,3,S,S uint8); returns the summary (also written)."""
    import yaml

    from baselines.augment import (
        augment_batch,
        build_pipeline,
        byol_specs,
        normalize,
        simsiam_specs,
    )
    from baselines.monitor import CollapseMonitor
    from elo.rundir import append_jsonl, atomic_write_json, atomic_write_text
    from elo.train.export import save_encoder

    obj, tr, seed = cfg["objective"], cfg["train"], int(cfg["seed"])
    steps, batch = int(tr["steps"]), int(tr["batch_size"])
    if batch < 2 or batch > len(images):
        raise ConfigError(f"train.batch_size={batch}: need 2 <= batch <= {len(images)} images")
    torch.manual_seed(seed)
    model = build_model(cfg).to(device)
    opt = build_optimizer(model, cfg)
    base_lrs = [g["lr"] for g in opt.param_groups]
    size = images.shape[-1]
    aug = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg["augment"].items()}
    specs = byol_specs(size, **aug) if obj == "byol" else simsiam_specs(size, **aug)
    pipes = [build_pipeline(s) for s in specs]
    proj_dim = int(cfg[obj]["proj_dim"])
    monitor = CollapseMonitor(proj_dim, float(cfg["monitor"]["threshold_ratio"]), "projection z")
    out.mkdir(parents=True, exist_ok=True)
    ckpt, metrics = out / "checkpoint.pt", out / "metrics.jsonl"
    start = 0
    if resume:
        if not ckpt.is_file():
            raise ConfigError(f"--resume: no checkpoint at {ckpt}; run without --resume first")
        start = load_checkpoint(ckpt, model, opt)
        log.info("resumed %s at step %d", ckpt, start)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
    plan = BatchPlan(len(images), batch, seed)
    every, ck_every = int(tr["log_every"]), int(tr["checkpoint_every"])
    model.train()
    t0 = time.perf_counter()
    for step in range(start, steps):
        g = plan.aug_generator(step)
        x01 = images[plan.indices(step)].float().div(255)  # B,3,S,S in [0,1]
        x1 = normalize(augment_batch(x01, pipes[0], g)).to(device)
        x2 = normalize(augment_batch(x01, pipes[1], g)).to(device)
        for group, base in zip(opt.param_groups, base_lrs, strict=True):
            fixed = group.get("fix_lr", False)
            group["lr"] = base if fixed else lr_at(step, steps, base, int(tr["warmup_steps"]))
        res = model(x1, x2)
        opt.zero_grad(set_to_none=True)
        res["loss"].backward()
        opt.step()
        rec: dict[str, Any] = {"step": step + 1, "loss": float(res["loss"].detach())}
        if obj == "byol":
            rec["tau"] = model.update_target(steps)  # type: ignore[operator]
        rec["collapse_std"] = monitor.update(res["z"], step + 1)
        if not math.isfinite(rec["loss"]):
            raise ConfigError(f"loss became {rec['loss']} at step {step + 1}; lower train.lr")
        if every > 0 and ((step + 1) % every == 0 or step + 1 == steps):
            rec.update(lr=opt.param_groups[0]["lr"], seconds=round(time.perf_counter() - t0, 3))
            if len(opt.param_groups) > 1:  # SimSiam's trainable predictor
                rec["predictor_lr"] = opt.param_groups[1]["lr"]
            append_jsonl(metrics, rec)
        if (ck_every > 0 and (step + 1) % ck_every == 0) or step + 1 == steps:
            save_checkpoint(ckpt, model, opt, step + 1)
    encoder = model.online_encoder if obj == "byol" else model.encoder
    summary: dict[str, Any] = {
        "objective": obj,
        "steps": steps,
        "collapse_std": monitor.last,
        "collapse_threshold": monitor.threshold,
        "collapse_warnings": monitor.fired,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    if (
        labels is not None
        and len(labels)
        and bool((labels >= 0).all())
        and len(set(labels.tolist())) > 1
    ):
        summary["knn_top1"] = knn_eval(encoder, images, labels, cfg, device)  # type: ignore[arg-type]
    save_encoder(
        out / "final",
        encoder,
        builder="baselines.image_encoder:build_image_encoder",
        kwargs=dict(cfg["encoder"]),
        input_info={"modality": "rgb", "shape": [3, size, size], "normalize": "imagenet"},
        meta={"objective": obj, "steps": steps},
    )
    atomic_write_json(out / "summary.json", summary)
    return summary


def train_baseline(args: argparse.Namespace) -> int:
    """Entry point of ``elo-train --objective byol|simsiam --data DIR``."""
    from baselines.frames import load_frames
    from elo.errors import DataError

    if not getattr(args, "data", None):
        raise DataError("--data is required with --objective: a folder of images or videos")
    cfg = load_baseline_config(args.objective, args.config, list(args.overrides or []))
    if args.steps is not None:
        cfg["train"]["steps"] = int(args.steps)
    if args.seed is not None:
        cfg["seed"] = int(args.seed)
    d = cfg["data"]
    frames = load_frames(
        args.data,
        size=int(d["image_size"]),
        frames_per_video=int(d["frames_per_video"]),
        max_files=int(d["max_files"]),
        split=d.get("split"),
        fold=int(d.get("fold", 1) or 1),
    )
    log.info("%d images from %s (%d classes)", len(frames.images), args.data, len(frames.classes))
    out = Path(args.out or f"runs/{args.objective}")
    summary = fit(
        cfg, frames.images, out, labels=frames.labels, device=args.device, resume=args.resume
    )
    knn = f", kNN top-1 {summary['knn_top1']:.3f}" if "knn_top1" in summary else ""
    print(
        f"{args.objective}: {summary['steps']} steps, collapse std {summary['collapse_std']:.4f} "
        f"({summary['collapse_warnings']} warnings){knn}; encoder in {out / 'final'}"
    )
    return 0
