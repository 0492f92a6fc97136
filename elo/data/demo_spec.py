"""What the demo dataset holds (elo.data.demo_data, ``elo-data demo``): its parameters
(:class:`DemoSpec`) and which clip is which (:func:`plan`: class, split, digit
instance; Zipf class frequencies in the training pool, :func:`zipf_counts`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from elo.errors import DataError

ACTIONS = ("right", "left", "up", "down", "spin_cw", "spin_ccw", "pulse", "orbit")
#: style -> (object set, background family); the two generators share nothing else but
#: the action definitions (elo/data/demo_data.py)
STYLES = ("a", "b", "c")  # c: elo/data/demo_c.py, its own generator


@dataclass(frozen=True)
class DemoSpec:
    clips: int = 1200
    seed: int = 0
    classes: int = 8
    zipf: float = 1.0
    test_fraction: float = 0.25
    size: int = 64
    fps: float = 8.0
    seconds: float = 2.0
    sample_rate: int = 16000
    motion_dropout: float = 0.05
    sound_dropout: float = 0.12
    style: str = "a"  # a: digits over colour blobs; b: glyphs over stripes, varying speed
    object_fraction: float = 0.45  # object side / frame side
    distractors: int = 2  # small shapes drifting in random directions


@dataclass(frozen=True)
class ClipPlan:
    index: int
    label: int
    split: str
    digit: int  # row of load_digits
    identity: int


def zipf_counts(total: int, k: int, s: float, rng: np.random.Generator) -> np.ndarray:
    """Class counts summing to ``total`` with p(rank) ∝ rank^-s (ranks shuffled over
    classes by ``rng``); largest-remainder rounding, every class >= 1 when possible."""
    p = np.arange(1, k + 1, dtype=np.float64) ** -s
    p = p / p.sum()
    raw = p * total
    counts = np.floor(raw).astype(np.int64)
    for i in np.argsort(-(raw - counts))[: total - counts.sum()]:
        counts[i] += 1
    if total >= k:
        while (counts == 0).any():
            counts[np.argmax(counts)] -= 1
            counts[np.argmin(counts)] += 1
    shuffled: np.ndarray = counts[rng.permutation(k)]
    return shuffled


def plan(spec: DemoSpec, targets: np.ndarray) -> list[ClipPlan]:
    """Which clip is which (class, split, digit instance); deterministic for the seed."""
    if spec.style not in STYLES:
        raise DataError(f"demo style must be one of {', '.join(STYLES)}, got {spec.style!r}")
    if not 2 <= spec.classes <= len(ACTIONS):
        raise DataError(f"demo classes must be in 2..{len(ACTIONS)}, got {spec.classes}")
    k = spec.classes
    rng = np.random.default_rng([spec.seed, 1])
    n_test = int(spec.test_fraction * spec.clips) // k * k
    if spec.test_fraction > 0:
        n_test = max(n_test, k)  # at least one clip per class in the test split
    n_train = spec.clips - n_test
    train_counts = zipf_counts(n_train, k, spec.zipf, rng)
    labels = [(c, "train") for c in range(k) for _ in range(train_counts[c])]
    labels += [(c, "test") for c in range(k) for _ in range(n_test // k)]
    order = rng.permutation(len(labels))
    rows = np.arange(len(targets))
    pools = {"train": rows[rows % 2 == 0], "test": rows[rows % 2 == 1]}  # disjoint instances
    out = []
    for i, j in enumerate(order):
        c, split = labels[j]
        d = int(rng.choice(pools[split]))
        out.append(ClipPlan(i, c, split, d, int(targets[d])))
    return out
