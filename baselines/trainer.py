"""Standalone image-side training of BYOL / SimSiam: ``elo-train --objective byol
--data DIR``.

Reads ``configs/baseline/<objective>.yaml`` (or ``--config``: a baseline name or path),
loads the images or video frames of ``DIR`` (:mod:`baselines.frames`), trains an image encoder
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

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from elo.baselines.monitor import CollapseMonitor
from elo.errors import ConfigError
from elo.rundir import append_jsonl, atomic_write_json, atomic_write_text
from elo.train import loop
from elo.train.loop import lr_at, optimizer_for

log = logging.getLogger(__name__)
OBJECTIVES = ("byol", "simsiam")


def load_baseline_config(
    objective: str, config: str | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> dict[str, Any]:
    """``configs/baseline/<objective>.yaml``, or ``config``: a name in
    ``configs/baseline`` or the path of a baseline config (a file with ``objective:``);
    an ELo experiment is refused in one line. ``key=value`` overrides must name
    existing keys; every key of the shipped file must be present and every number in
    its range (elo/config_values.py)."""
    from elo.config import apply_overrides, compose, configs_dir
    from elo.config_values import check_values, first_missing

    if objective not in OBJECTIVES:
        raise ConfigError(f"--objective {objective!r}: choose one of {', '.join(OBJECTIVES)}")
    path = _baseline_path(objective, config)
    cfg = apply_overrides(compose(path), list(overrides))
    if cfg.get("objective") != objective:
        raise ConfigError(
            f"config {str(path)!r} is for objective {cfg.get('objective')!r}, not "
            f"{objective!r}; see {configs_dir() / 'baseline'}"
        )
    shipped = configs_dir() / "baseline" / f"{objective}.yaml"
    missing = first_missing(cfg, compose(shipped))
    if missing is not None:
        raise ConfigError(
            f"{path}: missing config key {missing!r}; {shipped} declares every key of a "
            f"{objective} config with its default"
        )
    check_values(cfg)
    return cfg


def _baseline_path(objective: str, config: str | None) -> Path:
    """The baseline config file ``config`` names (default: the objective's own file)."""
    from elo.config import _load_yaml, configs_dir, resolve_config_path

    if config is None or config in _baseline_names():
        return resolve_config_path(config or objective, "baseline")
    given = Path(config)
    if given.suffix in (".yaml", ".yml") and given.is_file():
        if "objective" in _load_yaml(given):
            return given
        path = given
    else:
        path = resolve_config_path(config, "experiment")  # or: no such config at all
    raise ConfigError(
        f"--config {config}: {path} is an ELo experiment, which --objective {objective} "
        f"cannot use (its data, model and train keys are ELo's); give a baseline config "
        f"({', '.join(sorted(_baseline_names()))}) or a YAML path with 'objective: "
        f"{objective}' (every key: {configs_dir() / 'baseline' / objective}.yaml)"
    )


def _baseline_names() -> set[str]:
    from elo.config import configs_dir

    return {p.stem for p in (configs_dir() / "baseline").glob("*.yaml")}


def build_model(cfg: dict[str, Any]) -> nn.Module:
    """The standalone :class:`~baselines.byol.BYOL` or :class:`~baselines.simsiam.SimSiam`."""
    from elo.baselines.byol import BYOL
    from elo.baselines.image_encoder import build_image_encoder
    from elo.baselines.simsiam import SimSiam

    encoder = build_image_encoder(**cfg["encoder"])
    obj = cfg["objective"]
    sec = dict(cfg[obj])
    if obj == "byol":
        return BYOL(encoder, encoder.embed_dim, **sec)
    del sec["fix_predictor_lr"]
    return SimSiam(encoder, encoder.embed_dim, **sec)


def build_optimizer(model: nn.Module, cfg: dict[str, Any]) -> torch.optim.Optimizer:
    """SGD (momentum) or AdamW at ``lr · batch / 256``; SimSiam's predictor group is
    flagged ``fix_lr`` (kept at the initial lr, official ``--fix-pred-lr``)."""
    tr = cfg["train"]
    lr = float(tr["lr"]) * int(tr["batch_size"]) / 256
    if cfg["objective"] == "simsiam":
        fix = bool(cfg["simsiam"]["fix_predictor_lr"])
        groups: list[dict[str, Any]] = model.param_groups(fix)  # type: ignore[operator]
    else:
        params = [p for p in model.parameters() if p.requires_grad]
        groups = [{"params": params, "fix_lr": False}]
    return optimizer_for(
        groups, str(tr["optimizer"]), lr, float(tr["momentum"]), float(tr["weight_decay"])
    )


class BatchPlan(loop.BatchPlan):
    """Epoch permutations seeded by (seed, epoch) as one stream of positions:
    ``indices(step)`` is pure (:class:`elo.train.loop.BatchPlan`)."""

    def __init__(self, n: int, batch: int, seed: int) -> None:
        super().__init__(n, batch, seed, stride=1_000_003, drop_last=False)

    def aug_generator(self, step: int) -> torch.Generator:
        return torch.Generator().manual_seed((self.seed + 7) * 2_000_003 + step)


def save_checkpoint(path: Path, model: nn.Module, opt: torch.optim.Optimizer, step: int) -> None:
    loop.save_state(
        path, {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step}
    )


def load_checkpoint(path: Path, model: nn.Module, opt: torch.optim.Optimizer) -> int:
    state = loop.load_state(path)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    return int(state["step"])


def embed_images(encoder: nn.Module, images: torch.Tensor, device: str) -> torch.Tensor:
    """Embeddings N,D of uint8 images N,3,S,S (normalised, no augmentation):
    :func:`elo.model.network.embed` in batches of 256."""
    from elo.baselines.augment import normalize
    from elo.model.network import embed

    def prepare(x: torch.Tensor) -> torch.Tensor:
        return normalize(x.float().div(255))

    return embed(encoder, images, 256, device=device, transform=prepare)


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


@dataclass
class _Fit:
    """One baseline run's moving parts (:func:`fit`)."""

    cfg: dict[str, Any]
    model: nn.Module
    opt: torch.optim.Optimizer
    pipes: list[Any]
    monitor: CollapseMonitor
    plan: BatchPlan
    out: Path
    start: int = 0
    base_lrs: list[float] = field(default_factory=list)

    @property
    def ckpt(self) -> Path:
        return self.out / "checkpoint.pt"


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
    obj, steps = cfg["objective"], int(cfg["train"]["steps"])
    run = _start(cfg, images, out, device, resume)
    t0 = time.perf_counter()
    run.model.train()
    for step in range(run.start, steps):
        _step(run, images, step, device, t0)
    encoder = run.model.online_encoder if obj == "byol" else run.model.encoder
    summary: dict[str, Any] = {
        "objective": obj,
        "steps": steps,
        "collapse_std": run.monitor.last,
        "collapse_threshold": run.monitor.threshold,
        "collapse_warnings": run.monitor.fired,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    if (
        labels is not None
        and len(labels)
        and bool((labels >= 0).all())
        and len(set(labels.tolist())) > 1
    ):
        summary["knn_top1"] = knn_eval(encoder, images, labels, cfg, device)  # type: ignore[arg-type]
    _export(cfg, encoder, out, images.shape[-1])  # type: ignore[arg-type]
    atomic_write_json(out / "summary.json", summary)
    return summary


def _start(cfg: dict[str, Any], images: torch.Tensor, out: Path, device: str, resume: bool) -> _Fit:
    """The seeded model, optimizer, view pipelines and collapse monitor; the step to
    start at (the checkpoint's with ``resume``); ``out/config.yaml`` written."""
    import yaml

    from elo.baselines.augment import build_pipeline, byol_specs, simsiam_specs

    obj, tr, seed = cfg["objective"], cfg["train"], int(cfg["seed"])
    batch = int(tr["batch_size"])
    if batch < 2 or batch > len(images):
        raise ConfigError(f"train.batch_size={batch}: need 2 <= batch <= {len(images)} images")
    torch.manual_seed(seed)
    model = build_model(cfg).to(device)
    opt = build_optimizer(model, cfg)
    size = images.shape[-1]
    aug = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg["augment"].items()}
    specs = byol_specs(size, **aug) if obj == "byol" else simsiam_specs(size, **aug)
    proj_dim = int(cfg[obj]["proj_dim"])
    monitor = CollapseMonitor(proj_dim, float(cfg["monitor"]["threshold_ratio"]), "projection z")
    plan = BatchPlan(len(images), batch, seed)
    run = _Fit(cfg, model, opt, [build_pipeline(s) for s in specs], monitor, plan, out)
    run.base_lrs = [g["lr"] for g in opt.param_groups]
    out.mkdir(parents=True, exist_ok=True)
    if resume:
        if not run.ckpt.is_file():
            raise ConfigError(f"--resume: no checkpoint at {run.ckpt}; run without --resume first")
        run.start = load_checkpoint(run.ckpt, model, opt)
        log.info("resumed %s at step %d", run.ckpt, run.start)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
    return run


def _step(run: _Fit, images: torch.Tensor, step: int, device: str, t0: float) -> None:
    """One optimizer step on two augmented views of step ``step``'s batch; its metrics
    line every ``train.log_every`` steps, its checkpoint every ``train.checkpoint_every``."""
    from elo.baselines.augment import augment_batch, normalize

    cfg, model, opt = run.cfg, run.model, run.opt
    tr, steps = cfg["train"], int(cfg["train"]["steps"])
    plan = run.plan
    g = plan.aug_generator(step)
    x01 = images[plan.indices(step)].float().div(255)  # B,3,S,S in [0,1]
    x1 = normalize(augment_batch(x01, run.pipes[0], g)).to(device)
    x2 = normalize(augment_batch(x01, run.pipes[1], g)).to(device)
    for group, base in zip(opt.param_groups, run.base_lrs, strict=True):
        fixed = group.get("fix_lr", False)
        group["lr"] = base if fixed else lr_at(step, steps, int(tr["warmup_steps"]), base=base)
    res = model(x1, x2)
    opt.zero_grad(set_to_none=True)
    res["loss"].backward()
    opt.step()
    rec: dict[str, Any] = {"step": step + 1, "loss": float(res["loss"].detach())}
    if cfg["objective"] == "byol":
        rec["tau"] = model.update_target(steps)  # type: ignore[operator]
    rec["collapse_std"] = run.monitor.update(res["z"], step + 1)
    if not math.isfinite(rec["loss"]):
        raise ConfigError(f"loss became {rec['loss']} at step {step + 1}; lower train.lr")
    every, ck_every = int(tr["log_every"]), int(tr["checkpoint_every"])
    if every > 0 and ((step + 1) % every == 0 or step + 1 == steps):
        rec.update(lr=opt.param_groups[0]["lr"], seconds=round(time.perf_counter() - t0, 3))
        if len(opt.param_groups) > 1:  # SimSiam's trainable predictor
            rec["predictor_lr"] = opt.param_groups[1]["lr"]
        append_jsonl(run.out / "metrics.jsonl", rec)
    if (ck_every > 0 and (step + 1) % ck_every == 0) or step + 1 == steps:
        save_checkpoint(run.ckpt, model, opt, step + 1)


def _export(cfg: dict[str, Any], encoder: nn.Module, out: Path, size: int) -> None:
    """``out/final``: the trained image encoder (``elo.load_encoder(out / "final")``)."""
    from elo.train.export import save_encoder

    save_encoder(
        out / "final",
        encoder,
        builder="baselines.image_encoder:build_image_encoder",
        kwargs=dict(cfg["encoder"]),
        input_info={"modality": "rgb", "shape": [3, size, size], "normalize": "imagenet"},
        meta={"objective": cfg["objective"], "steps": int(cfg["train"]["steps"])},
    )


def train_baseline(
    objective: str,
    data: str | Path | None,
    *,
    config: str | None = None,
    overrides: Sequence[str] = (),
    steps: int | None = None,
    seed: int | None = None,
    out: str | Path | None = None,
    device: str = "cpu",
    resume: bool = False,
) -> int:
    """``elo-train --objective byol|simsiam --data DIR`` (elo/commands/train.py): train
    on the images or video frames of ``data`` and write ``out`` (default
    ``runs/<objective>``)."""
    from elo.baselines.frames import load_frames
    from elo.errors import DataError

    if not data:
        raise DataError("--data is required with --objective: a folder of images or videos")
    cfg = load_baseline_config(objective, config, list(overrides))
    if steps is not None:
        cfg["train"]["steps"] = int(steps)
    if seed is not None:
        cfg["seed"] = int(seed)
    d = cfg["data"]
    frames = load_frames(
        data,
        size=int(d["image_size"]),
        frames_per_video=int(d["frames_per_video"]),
        max_files=int(d["max_files"]),
        split=d["split"],
        fold=int(d["fold"]),
    )
    log.info("%d images from %s (%d classes)", len(frames.images), data, len(frames.classes))
    where = Path(out or f"runs/{objective}")
    summary = fit(cfg, frames.images, where, labels=frames.labels, device=device, resume=resume)
    knn = f", kNN top-1 {summary['knn_top1']:.3f}" if "knn_top1" in summary else ""
    print(
        f"{objective}: {summary['steps']} steps, collapse std {summary['collapse_std']:.4f} "
        f"({summary['collapse_warnings']} warnings){knn}; encoder in {where / 'final'}"
    )
    return 0


def train_byol(data: str | Path | None, **options: Any) -> int:
    """``elo-train --objective byol`` (the ``elo.objectives`` entry point)."""
    return train_baseline("byol", data, **options)


def train_simsiam(data: str | Path | None, **options: Any) -> int:
    """``elo-train --objective simsiam`` (the ``elo.objectives`` entry point)."""
    return train_baseline("simsiam", data, **options)
