"""A short seeded self-supervised training beats a randomly initialised encoder.

SimSiam (arXiv 2011.10566) through the real trainer (``baselines.trainer.fit``: the
torchvision v2 view pipeline, SGD momentum 0.9, wd 1e-4, cosine decay, fixed
predictor lr; base lr 0.1 · B/256, twice the paper's 0.05 for a 100-step run) on
scikit-learn's digits upsampled to 16 px. Measured with
``elo.probe.knn_accuracy`` (cosine kNN, k=20) on the backbone's pooled embedding in
eval mode, on the same stratified split for both encoders; the random encoder is the
trained one's exact initial weights (same seed, architecture and width).

Views scaled to 8x8-pixel digits: random-resized-crop area 0.8-1 (torchvision's
rejection sampling makes small crops more likely than the nominal range on a 16-px
image: at 0.5-1 two views share only ~0.62 of their centred pixel correlation and
training ends below random init), no flip (it maps digits onto other digits), no
hue / saturation / grayscale (the images are grey), no blur (a 3-px kernel at σ up
to 2 erases 8x8 strokes). Measured (seed 0, 100 steps): random 0.903, SimSiam 0.919.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from baselines.image_encoder import build_image_encoder
from baselines.trainer import fit, knn_eval, load_baseline_config

#: kNN top-1 gain over the random encoder that the seeded run must reach.
MARGIN = 0.01

DIGIT_VIEWS = [
    "augment.crop_scale=[0.8,1.0]",
    "augment.flip_p=0",
    "augment.hue=0",
    "augment.saturation=0",
    "augment.gray_p=0",
    "augment.blur_p=0",
]


def digits(size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1797 scikit-learn digits (8x8), upsampled, as uint8 RGB N,3,S,S."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0  # N,1,8,8
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False).clamp(0, 1)
    return (x.repeat(1, 3, 1, 1) * 255).round().to(torch.uint8), torch.tensor(d.target)


def test_simsiam_training_raises_knn_above_random_init(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    images, labels = digits()
    cfg = load_baseline_config(
        "simsiam",
        None,
        [
            "seed=0",
            "encoder.arch=small_cnn",
            "encoder.width=16",
            "simsiam.proj_dim=512",
            "simsiam.pred_dim=128",
            "train.steps=100",
            "train.batch_size=128",
            "train.lr=0.1",
            "train.log_every=0",
            "train.checkpoint_every=0",
            *DIGIT_VIEWS,
        ],
    )
    torch.manual_seed(int(cfg["seed"]))  # fit() seeds the same way before building
    random_knn = knn_eval(build_image_encoder(**cfg["encoder"]), images, labels, cfg, "cpu")
    summary = fit(cfg, images, tmp_path / "run", labels=labels)
    assert summary["collapse_warnings"] == 0
    assert summary["knn_top1"] >= random_knn + MARGIN, (random_knn, summary["knn_top1"])
