"""``elo-eval``: linear probe / kNN / fine-tune of an exported encoder."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--encoder", help="folder written by elo-train (rgb_encoder.safetensors)")
    p.add_argument("--data", help="labeled folder root/<class>/<clip> or demo dataset")
    p.add_argument("--protocol", choices=["linear", "knn", "finetune"], default="linear")
    p.add_argument("--label", default="label", help="label column to probe (e.g. a nuisance)")
    p.add_argument("--out", help="folder for results.json and the confusion matrix")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from elo.cli import not_implemented

    return not_implemented("eval", "issue 6")
