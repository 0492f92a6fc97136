"""Where the class of the style-c demo lives: in the motion, not in the appearance.

Writes a style-c demo set (real MP4 files), decodes it with PyAV and fits a linear probe
(standardised logistic regression, class-balanced) on the training pool, scored as
balanced accuracy on the test split (other shapes and backgrounds) and by 5-fold
cross-validation over all clips, for three parameter-free features:

* ``frame``: the middle frame, area-pooled to 8x8 RGB;
* ``mean``: the time-mean image, pooled the same way;
* ``motion``: OpenCV DIS optical flow statistics per frame pair (mean dx, dy of the flow
  less its median, i.e. the camera; the mean flow, curl and divergence where it moves;
  magnitude mean and sd), summarised over time (mean, sd, lag-1 autocorrelation and mean
  change of the moving flow).

The appearance features should stay near chance (0.125; 5-fold CV <= 0.175: the test
split has only 12 clips a class, its figure is noisier) and the motion statistics well
above it (test split >= 0.4); the exit status says whether they do. A check, not a
test: run it under the CPU slot.

    /work/shared/bin/cpu-slot .venv/bin/python benchmarks/check_demo_c.py --clips 400
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

FEATURES = ("frame", "mean", "motion")


def decode_frames(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as box:
        return np.stack([f.to_ndarray(format="rgb24") for f in box.decode(video=0)])


def pooled(image: np.ndarray, cells: int = 8) -> np.ndarray:
    import cv2

    small = cv2.resize(image.astype(np.float32), (cells, cells), interpolation=cv2.INTER_AREA)
    return np.asarray(small, dtype=np.float64).ravel()


def pair_statistics(flow: np.ndarray) -> np.ndarray:
    """One frame pair's flow (H, W, 2) -> 8 numbers (see the module docstring)."""
    res = flow - np.median(flow.reshape(-1, 2), axis=0)
    mag = np.hypot(res[..., 0], res[..., 1])
    moving = mag > 1.0
    du_dy, du_dx = np.gradient(res[..., 0])
    dv_dy, dv_dx = np.gradient(res[..., 1])
    curl, div = dv_dx - du_dy, du_dx + dv_dy
    where = moving if moving.any() else np.ones_like(moving)
    object_flow = res[where].mean(axis=0)
    return np.array(
        [
            *res.reshape(-1, 2).mean(axis=0),
            *object_flow,
            curl[where].mean(),
            div[where].mean(),
            mag.mean(),
            mag.std(),
        ]
    )


def motion_features(frames: np.ndarray) -> np.ndarray:
    import cv2

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    pairs = zip(gray[:-1], gray[1:], strict=True)
    stats = np.stack([pair_statistics(dis.calc(a, b, None)) for a, b in pairs])
    v = stats[:, 2:4]  # the moving flow, per pair
    lag1 = (v[1:] * v[:-1]).sum() / max(float((v * v).sum()), 1e-9)
    change = np.abs(np.diff(v, axis=0)).mean(axis=0)
    return np.concatenate([stats.mean(0), stats.std(0), [lag1], change])


def clip_features(path: Path) -> dict[str, np.ndarray]:
    frames = decode_frames(path)
    return {
        "frame": pooled(frames[len(frames) // 2]),
        "mean": pooled(frames.astype(np.float64).mean(axis=0)),
        "motion": motion_features(frames),
    }


def probe(x: np.ndarray, y: np.ndarray, train: np.ndarray) -> tuple[float, float]:
    """(balanced accuracy train -> test split, 5-fold CV balanced accuracy over all)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def model() -> Any:
        lr = LogisticRegression(C=0.1, max_iter=3000, class_weight="balanced")
        return make_pipeline(StandardScaler(), lr)

    fitted = model().fit(x[train], y[train])
    split = balanced_accuracy_score(y[~train], fitted.predict(x[~train]))
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    cv = cross_val_score(model(), x, y, cv=folds, scoring="balanced_accuracy").mean()
    return float(split), float(cv)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clips", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", help="dataset folder (default: a temporary one)")
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args(argv)
    from elo.data.demo_data import make_demo

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out or Path(tmp) / "demo_c")
        t0 = time.perf_counter()
        make_demo(root, clips=args.clips, seed=args.seed, workers=args.workers, style="c")
        t1 = time.perf_counter()
        with open(root / "labels.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        feats = [clip_features(root / r["path"]) for r in rows]
        t2 = time.perf_counter()
    y = np.array([int(r["label"]) for r in rows])
    train = np.array([r["split"] == "train" for r in rows])
    result: dict[str, Any] = {"clips": args.clips, "seed": args.seed, "chance": 0.125}
    for name in FEATURES:
        split, cv = probe(np.stack([f[name] for f in feats]), y, train)
        result[name] = {"test_split": round(split, 3), "cv5": round(cv, 3)}
        print(f"{name:>7}: test split {split:.3f}   5-fold CV {cv:.3f}   (chance 0.125)")
    print(f"generate {t1 - t0:.1f} s, decode + flow {t2 - t1:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    ok = max(result["frame"]["cv5"], result["mean"]["cv5"]) <= 0.175  # 400 clips: sd ~0.017
    return 0 if ok and result["motion"]["test_split"] >= 0.4 else 1


if __name__ == "__main__":
    sys.exit(main())
