"""``elo-eval``: linear probe / kNN / fine-tune of an exported encoder.

Writes ``OUT/results.json`` (atomic) and ``OUT/confusion.png``; prints top-1 (and
top-5 with ≥ 5 classes) and balanced accuracy. The clip geometry (frames, size) and
the RGB normalization come from the encoder's ``encoder.yaml``, so the labeled data is
extracted exactly as the encoder was trained on.
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
        top["modalities"] = {"rgb": dict(info["normalization"])}
    return deep_merge(cfg, {"data": top}) if top else cfg


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from elo.config import load_config
    from elo.data import make_loader
    from elo.errors import DataError
    from elo.evaluate import evaluate, save_confusion_png
    from elo.export import load_encoder
    from elo.rundir import atomic_write_json, seed_everything

    t0 = time.perf_counter()
    seed_everything(args.seed)
    encoder = load_encoder(args.encoder, device=args.device)
    cfg = data_config(load_config(args.config, args.overrides), encoder.export_info)
    loaders = {
        split: make_loader(
            cfg,
            args.data,
            split=split,
            modalities=("rgb",),
            batch_size=args.batch_size,
            shuffle=split == "train" and args.protocol == "finetune",
            seed=args.seed,
        )
        for split in ("train", "test")
    }
    ds: Any = loaders["train"].dataset
    if args.label == "label":
        names = list(ds.class_names)
    elif args.label in ds.label_names:
        names = list(ds.index.label_values[args.label])
    else:
        known = ", ".join(["label", *ds.label_names])
        raise DataError(f"{args.data}: no label column {args.label!r}; known: {known}")
    if not names:
        raise DataError(f"{args.data}: unlabeled dataset; elo-eval needs root/<class>/<clip>")
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
    )
    out = Path(args.out) if args.out else Path(args.encoder) / f"eval-{args.protocol}-{args.label}"
    title = f"{args.protocol} probe, {args.label}: top-1 {res.top1:.3f}"
    save_confusion_png(res.confusion, names, out / "confusion.png", title)
    record = {
        "encoder": str(args.encoder),
        "data": str(args.data),
        "label": args.label,
        "class_names": names,
        "num_train": len(loaders["train"].dataset),  # type: ignore[arg-type]
        "num_test": len(loaders["test"].dataset),  # type: ignore[arg-type]
        "seed": args.seed,
        **res.to_dict(names),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    atomic_write_json(out / "results.json", record)
    top5 = f"  top-5 {res.top5:.3f}" if res.top5 is not None else ""
    print(
        f"elo-eval {args.protocol} ({args.label}): top-1 {res.top1:.3f}{top5}  "
        f"balanced {res.balanced_accuracy:.3f}  ({record['num_test']} test clips) -> {out}"
    )
    return 0
