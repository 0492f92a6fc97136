"""Ours vs lightly: BYOL and SimSiam on the same backbone, data, views and budget.

Data: scikit-learn digits (8x8, upsampled to 16x16), each image given a fixed
random contrast and a shift of up to 3 px (so raw pixels are a weak kNN baseline).
Backbone: ``baselines.image_encoder`` small CNN (or ``--arch resnet18``). Both
implementations see the identical augmented view pairs each step (generated outside
the timed region, seeded by step) and the same AdamW optimizer (AdamW is invariant
to the loss scale, so BYOL's summed 2-2cos and lightly's ½·(-cos) train alike).
Timed: forward of both views, loss, backward, optimizer step, EMA update.
kNN: ``elo.evaluation.probe.knn_accuracy`` (k=20) on a stratified 80/20 split of un-augmented
images.

Run: ``.venv/bin/python benchmarks/bench_baselines.py [--steps 200]``
(needs the ``bench`` extra: ``pip install lightly==1.6.0 --no-deps``).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def digits_data(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0  # N,1,8,8
    x = F.interpolate(x, size=16, mode="bilinear", align_corners=False).clamp(0, 1)
    g = torch.Generator().manual_seed(seed)
    n = len(x)
    scale = torch.empty(n, 1, 1, 1).uniform_(0.5, 1.0, generator=g)
    offset = torch.empty(n, 1, 1, 1).uniform_(0.0, 0.5, generator=g)
    pad = F.pad(x * scale + offset * (1 - scale), (3, 3, 3, 3))
    sx, sy = torch.randint(0, 7, (n,), generator=g), torch.randint(0, 7, (n,), generator=g)
    x = torch.stack([pad[i, :, sy[i] : sy[i] + 16, sx[i] : sx[i] + 16] for i in range(n)])
    return (x.repeat(1, 3, 1, 1) * 255).round().to(torch.uint8), torch.tensor(d.target)


class Backbone(nn.Module):
    """lightly expects a backbone returning B,D features."""

    def __init__(self, enc: nn.Module) -> None:
        super().__init__()
        self.enc = enc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.enc(x).embedding


def lightly_byol(backbone: nn.Module, dim: int, hidden: int, proj: int) -> Any:
    from lightly.loss import NegativeCosineSimilarity
    from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
    from lightly.models.utils import deactivate_requires_grad, update_momentum
    from lightly.utils.scheduler import cosine_schedule

    class LBYOL(nn.Module):  # lightly's documented BYOL example
        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone
            self.projection_head = BYOLProjectionHead(dim, hidden, proj)
            self.prediction_head = BYOLPredictionHead(proj, hidden, proj)
            self.backbone_momentum = copy.deepcopy(self.backbone)
            self.projection_head_momentum = copy.deepcopy(self.projection_head)
            deactivate_requires_grad(self.backbone_momentum)
            deactivate_requires_grad(self.projection_head_momentum)
            self.criterion = NegativeCosineSimilarity()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.prediction_head(self.projection_head(self.backbone(x)))

        def forward_momentum(self, x: torch.Tensor) -> torch.Tensor:
            return self.projection_head_momentum(self.backbone_momentum(x)).detach()

        def train_step(self, x0: torch.Tensor, x1: torch.Tensor, step: int, total: int) -> Any:
            m = cosine_schedule(step, total, 0.99, 1)
            update_momentum(self.backbone, self.backbone_momentum, m=m)
            update_momentum(self.projection_head, self.projection_head_momentum, m=m)
            p0, z0 = self(x0), self.forward_momentum(x0)
            p1, z1 = self(x1), self.forward_momentum(x1)
            return 0.5 * (self.criterion(p0, z1) + self.criterion(p1, z0)), None

    return LBYOL()


def lightly_simsiam(backbone: nn.Module, dim: int, proj: int, pred: int) -> Any:
    from lightly.loss import NegativeCosineSimilarity
    from lightly.models.modules import SimSiamPredictionHead, SimSiamProjectionHead

    class LSimSiam(nn.Module):  # lightly's documented SimSiam example
        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone
            self.projection_head = SimSiamProjectionHead(dim, dim, proj)
            self.prediction_head = SimSiamPredictionHead(proj, pred, proj)
            self.criterion = NegativeCosineSimilarity()

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            z = self.projection_head(self.backbone(x))
            return z.detach(), self.prediction_head(z)

        def train_step(self, x0: torch.Tensor, x1: torch.Tensor, step: int, total: int) -> Any:
            z0, p0 = self(x0)
            z1, p1 = self(x1)
            return 0.5 * (self.criterion(z0, p1) + self.criterion(z1, p0)), None

    return LSimSiam()


Method = tuple[
    str,
    Callable[[], Any],
    Callable[[Any], nn.Module],
    Callable[[Any, torch.Tensor, torch.Tensor, int, int], torch.Tensor],
]


def run_pair(
    methods: list[Method],
    views: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    args: argparse.Namespace,
    images: torch.Tensor,
    labels: torch.Tensor,
) -> list[dict[str, Any]]:
    """Train the methods side by side, alternating steps on the same views, so a
    loaded machine slows both alike; median step time after 5 warm-up steps."""
    from elo.baselines.trainer import knn_eval, load_baseline_config

    models, opts = [], []
    for _, build, _, _ in methods:
        torch.manual_seed(args.seed)
        model = build()
        model.train()
        models.append(model)
        params = [p for p in model.parameters() if p.requires_grad]
        opts.append(torch.optim.AdamW(params, lr=args.lr))
    times: list[list[float]] = [[] for _ in methods]
    for step in range(args.steps):
        x0, x1 = views(step)
        order = range(len(methods)) if step % 2 == 0 else reversed(range(len(methods)))
        for i in order:
            model, opt, step_fn = models[i], opts[i], methods[i][3]
            t0 = time.perf_counter()
            loss = step_fn(model, x0, x1, step, args.steps)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if hasattr(model, "update_target"):
                model.update_target(args.steps)
            times[i].append(time.perf_counter() - t0)
    cfg = load_baseline_config("byol")
    return [
        {
            "name": name,
            "step_ms": 1e3 * statistics.median(times[i][5:]),
            "knn": knn_eval(encoder_of(models[i]), images, labels, cfg, "cpu"),
        }
        for i, (name, _, encoder_of, _) in enumerate(methods)
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--arch", default="small_cnn", choices=["small_cnn", "resnet18"])
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from elo.baselines.augment import (
        augment_batch,
        build_pipeline,
        byol_specs,
        normalize,
        simsiam_specs,
    )
    from elo.baselines.byol import BYOL
    from elo.baselines.image_encoder import build_image_encoder
    from elo.baselines.simsiam import SimSiam
    from elo.baselines.trainer import knn_eval, load_baseline_config

    images, labels = digits_data()
    mild = {"hue": 0.0, "saturation": 0.0, "flip_p": 0.0, "crop_scale": (0.5, 1.0)}

    def view_maker(specs: Any) -> Callable[[int], tuple[torch.Tensor, torch.Tensor]]:
        pipes = [build_pipeline(s) for s in specs]

        def views(step: int) -> tuple[torch.Tensor, torch.Tensor]:
            g = torch.Generator().manual_seed(10_000 + step)
            idx = torch.randint(0, len(images), (args.batch,), generator=g)
            x = images[idx].float().div(255)
            return normalize(augment_batch(x, pipes[0], g)), normalize(
                augment_batch(x, pipes[1], g)
            )

        return views

    def enc() -> nn.Module:
        return build_image_encoder(arch=args.arch, width=args.width)

    dim = enc().embed_dim  # type: ignore[attr-defined]
    hidden, proj, s_proj, s_pred = 1024, 128, 512, 128
    byol_views = view_maker(byol_specs(16, **mild))
    sims_views = view_maker(simsiam_specs(16, **mild))
    results = run_pair(
        [
            (
                "BYOL ours",
                lambda: BYOL(enc(), dim, hidden_dim=hidden, proj_dim=proj, tau_base=0.99),
                lambda m: m.online_encoder,
                lambda m, a, b, s, t: m(a, b)["loss"],
            ),
            (
                "BYOL lightly",
                lambda: lightly_byol(Backbone(enc()), dim, hidden, proj),
                lambda m: m.backbone.enc,
                lambda m, a, b, s, t: m.train_step(a, b, s, t)[0],
            ),
        ],
        byol_views,
        args,
        images,
        labels,
    )
    results += run_pair(
        [
            (
                "SimSiam ours",
                lambda: SimSiam(enc(), dim, proj_dim=s_proj, pred_dim=s_pred),
                lambda m: m.encoder,
                lambda m, a, b, s, t: m(a, b)["loss"],
            ),
            (
                "SimSiam lightly",
                lambda: lightly_simsiam(Backbone(enc()), dim, s_proj, s_pred),
                lambda m: m.backbone.enc,
                lambda m, a, b, s, t: m.train_step(a, b, s, t)[0],
            ),
        ],
        sims_views,
        args,
        images,
        labels,
    )
    torch.manual_seed(args.seed)
    random_knn = knn_eval(enc(), images, labels, load_baseline_config("byol"), "cpu")
    print(
        f"\nbench_baselines: digits 16px, {args.arch} (width {args.width}), batch {args.batch}, "
        f"{args.steps} steps, AdamW lr {args.lr}, {args.threads} thread(s)"
    )
    print(
        "| method | step ms | step-time ratio ours/lightly "
        f"| kNN top-1 (random init {random_knn:.3f}) |"
    )
    print("|---|---|---|---|")
    for i in range(0, len(results), 2):
        ours, theirs = results[i], results[i + 1]
        ratio = ours["step_ms"] / theirs["step_ms"]
        print(f"| {ours['name']} | {ours['step_ms']:.1f} | {ratio:.2f}x | {ours['knn']:.3f} |")
        print(f"| {theirs['name']} | {theirs['step_ms']:.1f} | 1.00x | {theirs['knn']:.3f} |")


if __name__ == "__main__":
    main()
