"""Style c demo data (elo/data/demo_c.py): the spec, its clip plan and the drawn scene's record."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from elo.errors import DataError

CLASSES = ("drift_ne", "drift_nw", "drift_sw", "drift_se", "zigzag", "circle", "loom", "shake")
AUDIO_MODES = ("tied", "independent", "absent")
TRAIN_SHAPES = ("ellipse", "polygon", "blob")
TEST_SHAPES = ("ring", "cross", "star")
TEXTURES = ("solid", "stripes", "noise")
ANOMALIES = ("none", "absent", "occluded", "still")
_DIAGONALS = {"drift_ne": 45.0, "drift_nw": 135.0, "drift_sw": 225.0, "drift_se": 315.0}
_REFERENCE = 64  # lengths in the spec are pixels of a 64 px frame

Range = tuple[float, float]
Array = np.ndarray


@dataclass(frozen=True)
class DemoCSpec:
    """Generation parameters; lengths and speeds in pixels (per frame) of a 64 px frame,
    scaled with ``size``."""

    clips: int = 1200
    seed: int = 0
    classes: int = 8
    zipf: float = 1.0
    test_fraction: float = 0.25
    size: int = 64
    fps: float = 8.0
    seconds: float = 2.0
    sample_rate: int = 16000
    audio: str = "tied"
    object_size: Range = (0.20, 0.45)  # diameter / side
    drift_speed: Range = (3.0, 4.5)
    drift_jitter_deg: float = 10.0
    zigzag_lateral: Range = (3.0, 4.0)
    zigzag_advance: Range = (1.0, 1.5)
    circle_speed: Range = (3.5, 5.0)
    circle_radius: Range = (7.0, 12.0)
    loom_speed: Range = (1.2, 1.8)  # radius growth
    shake_amplitude: Range = (1.6, 2.5)  # offset either side of home
    shake_turn: float = 0.35  # radians the shaking axis turns per frame at most
    camera_drift: float = 0.4
    camera_jitter: float = 0.3  # standard deviation per frame
    p_absent: float = 0.03
    p_occluded: float = 0.05
    p_still: float = 0.04
    background_exponent: Range = (1.0, 1.3)  # luminance; chroma is 0.5 smoother
    test_background_exponent: Range = (1.4, 1.7)
    saturation: Range = (0.2, 0.6)
    test_saturation: Range = (0.6, 0.9)
    contrast: Range = (0.18, 0.35)  # object luminance minus background mean, either sign
    click_rate: float = 2.0  # Hz, sound class 0
    click_ratio: float = 1.35
    band_hz: float = 300.0  # centre of the click band, sound class 0
    band_ratio: float = 1.4
    test_sound_shift: float = 1.1

    @property
    def frames(self) -> int:
        return int(round(self.fps * self.seconds))

    @property
    def scale(self) -> float:
        return self.size / _REFERENCE


@dataclass(frozen=True)
class ClipJob:
    """One clip of the plan: its index (seeds its draws), class, split and file."""

    index: int
    label: int
    split: str
    rel: str


@dataclass
class Scene:
    """Everything drawn for one clip; :func:`render_frames` / :func:`render_sound`."""

    job: ClipJob
    shape: str
    shape_params: tuple[float, ...]
    turn: float  # object rotation, radians
    texture: str
    texture_params: tuple[float, ...]
    polarity: str
    colour: Array  # (3,) RGB in [0, 1]
    anomaly: str
    centre: Array  # (T, 2) screen position (x, y), wrapped into the frame
    radius: Array  # (T,) px
    camera: Array  # (T, 2) camera offset, px
    background_exponent: float
    background_seed: int
    background_level: Array  # (mean, luminance sd, chroma sd)
    tint: Array  # (3,)
    occluder: Array  # (axis, centre, half width) in world px
    sound: int  # sound class; -1 without audio


# --- the plan: which clip is which ---------------------------------------------------


def zipf_sizes(total: int, k: int, exponent: float, rng: np.random.Generator) -> Array:
    """``total`` split over ``k`` classes as p(rank) ~ rank^-exponent (largest remainder,
    every class at least one clip when ``total >= k``), ranks shuffled over classes."""
    p = np.arange(1, k + 1, dtype=np.float64) ** -exponent
    raw = total * p / p.sum()
    counts = np.floor(raw).astype(np.int64)
    counts[np.argsort(counts - raw, kind="stable")[: total - int(counts.sum())]] += 1
    while total >= k and (counts == 0).any():
        counts[np.argmax(counts)] -= 1
        counts[np.argmin(counts)] += 1
    shuffled: Array = counts[rng.permutation(k)]
    return shuffled


def split_sizes(spec: DemoCSpec) -> tuple[int, int]:
    """(train, test) clip counts; the test split is balanced, one clip per class at least."""
    k = spec.classes
    n_test = int(spec.test_fraction * spec.clips) // k * k
    if spec.test_fraction > 0:
        n_test = max(n_test, k)
    return spec.clips - n_test, n_test


def plan_clips(spec: DemoCSpec) -> list[ClipJob]:
    """Every clip's class, split and file, in a seeded random order."""
    check_spec(spec)
    k = spec.classes
    rng = np.random.default_rng([spec.seed, 0xC])
    n_train, n_test = split_sizes(spec)
    train = np.repeat(np.arange(k), zipf_sizes(n_train, k, spec.zipf, rng))
    labels = np.concatenate([train, np.repeat(np.arange(k), n_test // k)])
    splits = ["train"] * n_train + ["test"] * n_test
    seen = [0] * k
    jobs = []
    for i, j in enumerate(rng.permutation(len(labels))):
        label = int(labels[j])
        name = CLASSES[label]
        jobs.append(ClipJob(i, label, splits[j], f"{name}/{name}_{seen[label]:04d}.mp4"))
        seen[label] += 1
    return jobs


def check_spec(spec: DemoCSpec) -> None:
    if not 2 <= spec.classes <= len(CLASSES):
        raise DataError(f"demo classes must be in 2..{len(CLASSES)}, got {spec.classes}")
    if spec.audio not in AUDIO_MODES:
        raise DataError(f"demo audio must be one of {', '.join(AUDIO_MODES)}, got {spec.audio!r}")
    if spec.size < 16 or spec.frames < 2:
        raise DataError(f"demo clips need size >= 16 and 2 frames, got {spec.size}, {spec.frames}")
    n_train, _ = split_sizes(spec)
    if n_train < spec.classes:
        raise DataError(f"demo needs at least {spec.classes * 2} clips, got {spec.clips}")


# --- motion: the class -----------------------------------------------------------------
