"""``elo-eval``: linear probe / kNN / fine-tune of an exported encoder.

Writes ``OUT/results.json`` (atomic) and ``OUT/confusion.png``; prints top-1 (and
top-5 with ≥ 5 classes) and balanced accuracy. ``--fold all`` evaluates every official
fold of the dataset (UCF101 / HMDB51: 3) and reports mean ± sd; ``--clips N --crops M``
scores each test video by its N uniformly spaced clips x M crops (docs/evaluation.md).
The clip geometry (frames, size) and the RGB normalization come from the encoder's
``encoder.yaml``, so the labeled data is extracted exactly as the encoder was trained on.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--encoder", required=True, help="folder written by elo-train (rgb_encoder.safetensors)"
    )
    p.add_argument(
        "--data", help="labeled folder root/<class>/<clip>, a CSV manifest or the demo dataset"
    )
    p.add_argument("--protocol", choices=["linear", "knn", "finetune"], default="linear")
    p.add_argument("--label", default="label", help="label column to probe (e.g. a nuisance)")
    p.add_argument("--out", help="folder for results.json and the confusion matrix")
    p.add_argument("--config", default="demo", help="experiment config for the data section")
    p.add_argument("overrides", nargs="*", help="config overrides key=value (data.* keys)")
    p.add_argument("--k", type=int, default=20, help="neighbours for --protocol knn")
    p.add_argument("--epochs", type=int, default=5, help="epochs for --protocol finetune")
    p.add_argument("--lr", type=float, default=1e-3, help="head lr for --protocol finetune")
    p.add_argument(
        "--fold",
        default="1",
        help="official split fold to evaluate (1, 2, 3, ...) or 'all' (mean ± sd over folds)",
    )
    p.add_argument(
        "--clips",
        type=int,
        help="test clips per video, uniformly spaced; predictions averaged "
        "(default: the config's data.clip sampling, 1 window per video in the demo)",
    )
    p.add_argument(
        "--crops",
        type=int,
        default=1,
        help="spatial crops per test clip, averaged: of the model's size across the wider "
        "cached clip (data.clip.extra_pixels > 0), else --crop-fraction of it",
    )
    p.add_argument(
        "--crop-fraction",
        type=float,
        default=0.875,
        help="crop side / clip side when --crops > 1 and the cache is not wider than the "
        "model's clip (train clips then use the centre crop)",
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)


def data_config(cfg: dict[str, Any], export_info: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` with the clip geometry and RGB normalization the encoder was exported with."""
    from elo.config import deep_merge

    info = export_info.get("input") or {}
    shape = info.get("shape") or []
    top: dict[str, Any] = {}
    if len(shape) == 4:  # C,T,H,W
        top["clip"] = {"frames": int(shape[1]), "size": int(shape[2])}
    if info.get("normalization"):
        # an encoder exported before time-centring existed was trained uncentred
        top["modalities"] = {"rgb": {"center_time": False, **dict(info["normalization"])}}
    return deep_merge(cfg, {"data": top}) if top else cfg


def _folds(text: str, root: Any) -> list[int]:
    from elo.data.layouts import scan
    from elo.errors import DataError

    if text == "all":
        return scan(root).fold_numbers
    try:
        fold = int(text)
    except ValueError:
        fold = 0
    if fold < 1:
        raise DataError(f"--fold {text!r}: use a fold number (1, 2, 3, ...) or 'all'")
    return [fold]


def _mean_sd(values: list[float]) -> tuple[float, float]:
    import statistics

    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def run(args: argparse.Namespace) -> int:
    import time

    from elo.config import load_config
    from elo.errors import DataError
    from elo.rundir import seed_everything
    from elo.train.export import load_encoder

    t0 = time.perf_counter()
    seed_everything(args.seed)
    if args.clips is not None and args.clips < 1:
        raise DataError(f"--clips must be >= 1, got {args.clips}")
    if args.crops < 1 or not 0 < args.crop_fraction <= 1:
        raise DataError("--crops must be >= 1 and --crop-fraction in (0, 1]")
    encoder = load_encoder(args.encoder, device=args.device)
    cfg = data_config(load_config(args.config, args.overrides), encoder.export_info)
    root = args.data or cfg["data"]["root"]
    if not root:
        raise DataError("no dataset given: pass --data DIR or set data.root in the config")
    clip = cfg["data"]["clip"]
    size = int(clip["size"])
    # Several crops: from the larger cached clip when the cache holds more than the
    # model's input (data.clip.extra_pixels), each of the model's size, as the field's
    # 3-crop test does; else smaller crops (--crop-fraction) of the model's clip.
    wide = args.crops > 1 and int(clip["extra_pixels"]) > 0
    if wide:
        crop_size: int | None = size
    else:
        crop_size = max(1, round(args.crop_fraction * size)) if args.crops > 1 else None
    folds = _folds(args.fold, root)
    results: list[Any] = []
    per_fold: list[dict[str, Any]] = []
    names: list[str] = []
    for fold in folds:
        res, names, rec = _evaluate_fold(args, encoder, cfg, root, fold, wide, crop_size)
        results.append(res)
        per_fold.append(rec)
        if len(folds) > 1:
            print(f"elo-eval fold {fold}: top-1 {res.top1:.3f}", flush=True)
    _report(args, root, folds, results, per_fold, names, crop_size, t0)
    return 0


def _evaluate_fold(
    args: argparse.Namespace,
    encoder: Any,
    cfg: dict[str, Any],
    root: Any,
    fold: int,
    wide: bool,
    crop_size: int | None,
) -> tuple[Any, list[str], dict[str, Any]]:
    """One fold: its train / test loaders, the probe's result, the class names and the
    fold's line of ``results.json``."""
    from elo.config import deep_merge
    from elo.data.datasets import make_loader
    from elo.evaluation.evaluate import evaluate

    test_clip = {"per_video": args.clips, "sampling": "uniform"} if args.clips else {}
    fold_cfg = deep_merge(cfg, {"data": {"fold": fold}})
    loaders = {
        split: make_loader(
            deep_merge(fold_cfg, {"data": {"clip": test_clip}}) if split == "test" else fold_cfg,
            args.data,  # None: the config's data.root and data.cache
            split=split,
            modalities=("rgb",),
            batch_size=args.batch_size,
            shuffle=split == "train" and args.protocol == "finetune",
            seed=args.seed,
            uncropped=wide and split == "test",
        )
        for split in ("train", "test")
    }
    names = _class_names(loaders["train"].dataset, args.label, root)
    clip = cfg["data"]["clip"]
    res = evaluate(
        encoder,
        loaders["train"],
        loaders["test"],
        protocol=args.protocol,
        label=args.label,
        num_classes=len(names),
        seed=args.seed,
        k=args.k,
        epochs=args.epochs,
        lr=args.lr,
        device=args.device,
        crops=args.crops,
        crop_size=crop_size,
        test_frames=int(clip["frames"]) if wide else None,
    )
    record = {
        "fold": fold,
        "top1": res.top1,
        "top5": res.top5,
        "balanced_accuracy": res.balanced_accuracy,
        "num_train": len(loaders["train"].dataset),  # type: ignore[arg-type]
        "num_test": len(loaders["test"].dataset),  # type: ignore[arg-type]
        "test_videos": res.extra.get("test_videos"),
        "test_views": res.extra.get("test_views"),
    }
    return res, names, record


def _class_names(ds: Any, label: str, root: Any) -> list[str]:
    """The values of label column ``label`` of the dataset ``ds``."""
    from elo.errors import DataError

    if label == "label":
        names = list(ds.class_names)
    elif label in ds.label_names:
        names = list(ds.index.label_values[label])
    else:
        known = ", ".join(["label", *ds.label_names])
        raise DataError(f"{root}: no label column {label!r}; known: {known}")
    if not names:
        raise DataError(f"{root}: unlabeled dataset; elo-eval needs root/<class>/<clip>")
    return names


def _report(
    args: argparse.Namespace,
    root: Any,
    folds: list[int],
    results: list[Any],
    per_fold: list[dict[str, Any]],
    names: list[str],
    crop_size: int | None,
    t0: float,
) -> None:
    """``OUT/confusion.png``, ``OUT/results.json`` (mean ± sd over folds), one line."""
    import time
    from pathlib import Path

    import numpy as np

    from elo.evaluation.evaluate import save_confusion_png
    from elo.rundir import atomic_write_json

    out = Path(args.out) if args.out else Path(args.encoder) / f"eval-{args.protocol}-{args.label}"
    confusion = np.sum([r.confusion for r in results], axis=0)
    top1, top1_sd = _mean_sd([r.top1 for r in results])
    fold_text = f"{len(folds)} folds" if len(folds) > 1 else f"fold {folds[0]}"
    title = f"{args.protocol} probe, {args.label}, {fold_text}: top-1 {top1:.3f}"
    save_confusion_png(confusion, names, out / "confusion.png", title)
    record = {
        "encoder": str(args.encoder),
        "data": str(root),
        "label": args.label,
        "class_names": names,
        "num_train": sum(f["num_train"] for f in per_fold),
        "num_test": sum(f["num_test"] for f in per_fold),
        "seed": args.seed,
        **results[0].to_dict(names),
        "protocol": args.protocol,
        "fold": args.fold,
        "folds": folds,
        "clips": args.clips if args.clips else "config",
        "crops": args.crops,
        "crop_size": crop_size,
        **_fold_means(results),
        "confusion": confusion.tolist(),
        "per_fold": per_fold,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    if len(folds) > 1:  # one fold's per-class recall would misdescribe the mean
        record["per_class"] = _recalls(confusion, names)
    atomic_write_json(out / "results.json", record)
    top5 = f"  top-5 {record['top5']:.3f}" if record["top5"] is not None else ""
    sd = f" ± {top1_sd:.3f}" if len(folds) > 1 else ""
    views = f"{args.clips or 'config'} clips x {args.crops} crops"
    print(
        f"elo-eval {args.protocol} ({args.label}, {fold_text}, {views}): top-1 {top1:.3f}{sd}"
        f"{top5}  balanced {record['balanced_accuracy']:.3f}  ({record['num_test']} test clips)"
        f" -> {out}"
    )


def _fold_means(results: list[Any]) -> dict[str, Any]:
    """Mean and sd over the folds of top-1, top-5 (None with < 5 classes), balanced."""
    top1, top1_sd = _mean_sd([r.top1 for r in results])
    bal, bal_sd = _mean_sd([r.balanced_accuracy for r in results])
    top5s = [r.top5 for r in results if r.top5 is not None]
    return {
        "top1": top1,
        "top1_sd": top1_sd,
        "top5": _mean_sd(top5s)[0] if top5s else None,
        "top5_sd": _mean_sd(top5s)[1] if top5s else None,
        "balanced_accuracy": bal,
        "balanced_accuracy_sd": bal_sd,
    }


def _recalls(confusion: Any, names: list[str]) -> dict[str, float]:
    """Per-class recall of the summed confusion matrix (rows = true class)."""
    return {
        names[c]: float(confusion[c, c] / confusion[c].sum())
        for c in range(len(names))
        if confusion[c].sum()
    }
