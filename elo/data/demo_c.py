"""Demo dataset, style c (``make_demo(out, style="c")``, ``elo-data demo --style c``).

A third synthetic labelled-video generator, written independently of styles a and b; it
is never used to choose a default, only to confirm one. It shares no rendering code
with them, only the on-disk layout.

A clip (64x64, 8 fps, 2 s by default; :class:`DemoCSpec`) is one object over a moving
background, seen by a camera that drifts slowly and jitters:

* background: a natural-image-like colour texture with a 1/f^e amplitude spectrum
  (random phases, numpy FFT; periodic, so the camera moves it by a Fourier phase ramp);
* object: an ellipse, convex polygon or smooth blob (test split: ring, cross or star),
  20-45 % of the side, rotated at random, of a random hue, lighter or darker than the
  background (``polarity``), solid or with stripes or noise that move with it. The
  frame wraps around (a torus), so the object's position is uniform in every frame of
  every class and nothing in one frame or in the time-mean image tells the class;
* classes, by motion only (speeds in px/frame of a 64 px frame): ``drift_ne`` /
  ``drift_nw`` / ``drift_sw`` / ``drift_se`` (straight along a diagonal +-10 deg, 3-4.5),
  ``zigzag`` (a random axis, +-3-4 across it reversing every 2-3 frames), ``circle``
  (radius 7-12, 3.5-5 along it, either way round), ``loom`` (grows 1.2-1.8 px/frame in
  radius, then starts small again; its radius is uniform over the same range as every
  other object's in every frame), ``shake`` (back and forth in place, 3.2-5 per frame);
* nuisance shift: the test split has other shapes, smoother backgrounds (exponent
  1.4-1.7, train 1.0-1.3) and more saturated objects; ``anomaly`` marks the few clips
  (both splits, every class alike) whose object is ``absent``, ``still`` or
  ``occluded`` by a textured band;
* audio (``audio``): ``tied``: clicks (noise bursts) whose rate (2 Hz x 1.35^c) and
  band (300 Hz x 1.4^c) follow the class c, the test split's both 1.1 x higher;
  ``independent``: the same sounds, their class drawn independently of the label
  (column ``sound``); ``absent``: no audio stream.

On disk (like the other styles, UCF101-like): ``<class>/<class>_<n>.mp4`` (H.264
all-intra yuv420p, AAC mono), ``classInd.txt``, ``trainlist.txt`` / ``testlist.txt``,
``labels.csv`` (path, label, class, split, shape, texture, polarity, anomaly, and
sound unless absent) and ``demo.json``. The training pool's class sizes follow Zipf's
law; the test split is balanced. Deterministic for a seed (pool or not).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from elo.errors import DataError
from elo.rundir import atomic_write_bytes, atomic_write_json, atomic_write_text

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


def _uniform(rng: np.random.Generator, r: Range, n: int | None = None) -> Any:
    return rng.uniform(r[0], r[1], n)


def _drift(spec: DemoCSpec, rng: np.random.Generator, t: Array, angle: float) -> Array:
    a = np.deg2rad(angle + rng.uniform(-spec.drift_jitter_deg, spec.drift_jitter_deg))
    v = _uniform(rng, spec.drift_speed) * spec.scale
    return np.stack([v * np.cos(a) * t, -v * np.sin(a) * t], 1)  # screen y points down


def _zigzag(spec: DemoCSpec, rng: np.random.Generator, t: Array) -> Array:
    axis = rng.uniform(0, 2 * np.pi)
    half = int(rng.integers(2, 4))  # frames between reversals
    side = np.where((np.arange(len(t) - 1) + rng.integers(2 * half)) // half % 2 == 0, 1, -1)
    along = _uniform(rng, spec.zigzag_advance) * spec.scale
    across = side * _uniform(rng, spec.zigzag_lateral) * spec.scale
    step = np.stack(
        [
            along * np.cos(axis) - across * np.sin(axis),
            along * np.sin(axis) + across * np.cos(axis),
        ],
        1,
    )
    return np.concatenate([np.zeros((1, 2)), np.cumsum(step, 0)])


def _circle(spec: DemoCSpec, rng: np.random.Generator, t: Array) -> Array:
    r = _uniform(rng, spec.circle_radius) * spec.scale
    w = _uniform(rng, spec.circle_speed) * spec.scale / r * rng.choice([-1.0, 1.0])
    phase = rng.uniform(0, 2 * np.pi) + w * t
    return np.stack([r * np.cos(phase), r * np.sin(phase)], 1)


def _shake(spec: DemoCSpec, rng: np.random.Generator, t: Array) -> Array:
    axis = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.uniform(-1, 1, len(t)) * spec.shake_turn)
    reach = _uniform(rng, spec.shake_amplitude, len(t)) * spec.scale * (-1.0) ** t
    return np.stack([reach * np.cos(axis), reach * np.sin(axis)], 1)


def radius_range(spec: DemoCSpec) -> Range:
    lo, hi = spec.object_size
    return lo * spec.size / 2, hi * spec.size / 2


def motion(label: int, spec: DemoCSpec, rng: np.random.Generator) -> tuple[Array, Array]:
    """(offset from home (T, 2), radius (T,)) of the class's object, in px per frame."""
    name, t = CLASSES[label], np.arange(spec.frames, dtype=np.float64)
    lo, hi = radius_range(spec)
    radius = np.full(len(t), rng.uniform(lo, hi))
    if name == "loom":  # sawtooth growth, random phase: uniform radius in every frame
        grow = _uniform(rng, spec.loom_speed) * spec.scale
        return np.zeros((len(t), 2)), lo + (rng.uniform(0, hi - lo) + grow * t) % (hi - lo)
    if name in _DIAGONALS:
        return _drift(spec, rng, t, _DIAGONALS[name]), radius
    paths: dict[str, Callable[[DemoCSpec, np.random.Generator, Array], Array]] = {
        "zigzag": _zigzag,
        "circle": _circle,
        "shake": _shake,
    }
    return paths[name](spec, rng, t), radius


def _camera(spec: DemoCSpec, rng: np.random.Generator) -> Array:
    t = np.arange(spec.frames, dtype=np.float64)[:, None]
    a = rng.uniform(0, 2 * np.pi)
    drift = rng.uniform(0, spec.camera_drift) * np.array([np.cos(a), np.sin(a)])
    jitter = rng.normal(0, spec.camera_jitter, (spec.frames, 2))
    out: Array = (drift * t + jitter) * spec.scale
    return out


# --- appearance: the nuisance ----------------------------------------------------------


def _polygon_angles(n: int, rng: np.random.Generator) -> tuple[float, ...]:
    step = 2 * np.pi / n
    return tuple(float(a) for a in np.arange(n) * step + rng.uniform(-0.25, 0.25, n) * step)


def draw_shape(name: str, rng: np.random.Generator) -> tuple[float, ...]:
    """Parameters of a shape of unit radius (see :func:`shape_distance`)."""
    if name == "ellipse":
        return (float(rng.uniform(0.55, 1.0)),)
    if name == "polygon":
        return _polygon_angles(int(rng.integers(3, 8)), rng)
    if name == "blob":
        return tuple(float(v) for v in (*rng.uniform(0, 0.15, 3), *rng.uniform(0, 2 * np.pi, 3)))
    if name == "ring":
        return (float(rng.uniform(0.45, 0.7)),)
    if name == "cross":
        return (float(rng.uniform(0.22, 0.35)),)
    if name == "star":
        return float(rng.integers(5, 8)), float(rng.uniform(0.5, 0.65))
    raise DataError(f"unknown demo shape {name!r}")


def _polygon_distance(angles: Sequence[float], u: Array, v: Array) -> Array:
    a = np.asarray(angles)
    px, py = np.cos(a), np.sin(a)
    nx, ny = np.roll(py, -1) - py, px - np.roll(px, -1)  # outward normals (ccw vertices)
    norm = np.hypot(nx, ny)
    nx, ny = nx / norm, ny / norm
    h = nx * px + ny * py
    d: Array = np.max(nx * u[..., None] + ny * v[..., None] - h, axis=-1)
    return d


def _blob_distance(p: Sequence[float], u: Array, v: Array) -> Array:
    theta, rho = np.arctan2(v, u), np.hypot(u, v)
    amps, phases = np.asarray(p[:3]), np.asarray(p[3:])
    wave = sum(a * np.cos(k * theta + ph) for k, a, ph in zip((2, 3, 4), amps, phases, strict=True))
    out: Array = (rho - (1 + wave) / (1 + amps.sum())) * 0.8
    return out


def _star_distance(p: Sequence[float], u: Array, v: Array) -> Array:
    points, inner = p
    frac = (np.arctan2(v, u) * points / (2 * np.pi)) % 1.0
    edge = inner + (1 - inner) * np.abs(2 * frac - 1)
    out: Array = (np.hypot(u, v) - edge) * 0.6
    return out


def _cross_distance(p: Sequence[float], u: Array, v: Array) -> Array:
    w, au, av = p[0], np.abs(u), np.abs(v)
    out: Array = np.minimum(np.maximum(au - 1, av - w), np.maximum(au - w, av - 1))
    return out


def _ellipse_distance(p: Sequence[float], u: Array, v: Array) -> Array:
    out: Array = (np.hypot(u, v / p[0]) - 1) * p[0]
    return out


def _ring_distance(p: Sequence[float], u: Array, v: Array) -> Array:
    rho = np.hypot(u, v)
    out: Array = np.maximum(rho - 1, p[0] - rho)
    return out


_DISTANCES: dict[str, Callable[[Sequence[float], Array, Array], Array]] = {
    "ellipse": _ellipse_distance,
    "polygon": _polygon_distance,
    "blob": _blob_distance,
    "ring": _ring_distance,
    "cross": _cross_distance,
    "star": _star_distance,
}


def shape_distance(name: str, p: Sequence[float], u: Array, v: Array) -> Array:
    """Signed distance (in object radii, approximately) from the shape's edge; < 0 inside."""
    return _DISTANCES[name](p, u, v)


def draw_texture(rng: np.random.Generator) -> tuple[str, tuple[float, ...]]:
    """The object's surface: solid, stripes (frequency, angle, phase) or noise (seed)."""
    kind = str(rng.choice(TEXTURES))
    if kind == "stripes":
        return kind, (float(rng.uniform(1.5, 3.0)), *rng.uniform(0, 2 * np.pi, 2))
    if kind == "noise":
        return kind, (float(rng.integers(2**31)),)
    return kind, ()


def _object_colour(
    spec: DemoCSpec, rng: np.random.Generator, test: bool, mean: float
) -> tuple[str, Array]:
    import colorsys

    polarity = str(rng.choice(["light", "dark"]))
    sign = 1.0 if polarity == "light" else -1.0
    target = float(np.clip(mean + sign * _uniform(rng, spec.contrast), 0.06, 0.94))
    sat = _uniform(rng, spec.test_saturation if test else spec.saturation)
    rgb = np.array(colorsys.hsv_to_rgb(rng.uniform(), sat, 1.0))
    return polarity, with_luminance(rgb, target)


def with_luminance(rgb: Array, target: float) -> Array:
    """``rgb`` scaled to luminance ``target``, blended towards white where it saturates."""
    weights = np.array([0.299, 0.587, 0.114])
    out: Array = np.clip(rgb * target / float(rgb @ weights), 0.0, 1.0)
    short = target - float(out @ weights)
    if short > 0:
        out = out + (1 - out) * short / (1 - float(out @ weights))
    return out


def _anomaly(spec: DemoCSpec, rng: np.random.Generator) -> str:
    p = [spec.p_absent, spec.p_occluded, spec.p_still]
    return str(rng.choice(ANOMALIES, p=[1 - sum(p), *p]))


def _sound_class(spec: DemoCSpec, label: int, rng: np.random.Generator) -> int:
    if spec.audio == "absent":
        return -1
    drawn = int(rng.integers(spec.classes))
    return label if spec.audio == "tied" else drawn


def _held(offset: Array, radius: Array, frame: int) -> tuple[Array, Array]:
    """The object of a ``still`` clip: as it is in ``frame``, in every frame."""
    return np.repeat(offset[frame : frame + 1], len(offset), 0), np.full_like(radius, radius[frame])


def draw_scene(spec: DemoCSpec, job: ClipJob) -> Scene:
    """Draw everything about one clip from its own seed (video and sound streams apart,
    so the audio mode changes no pixel)."""
    rng = np.random.default_rng([spec.seed, 0xC, job.index, 0])
    test = job.split == "test"
    offset, radius = motion(job.label, spec, rng)
    camera = _camera(spec, rng)
    anomaly = _anomaly(spec, rng)
    if anomaly == "still":
        offset, radius = _held(offset, radius, int(rng.integers(spec.frames)))
    home = rng.uniform(0, spec.size, 2)
    shape = str(rng.choice(TEST_SHAPES if test else TRAIN_SHAPES))
    level = np.array([rng.uniform(0.35, 0.65), rng.uniform(0.08, 0.16), rng.uniform(0.02, 0.06)])
    polarity, colour = _object_colour(spec, rng, test, float(level[0]))
    texture, texture_params = draw_texture(rng)
    exponent = spec.test_background_exponent if test else spec.background_exponent
    return Scene(
        job=job,
        shape=shape,
        shape_params=draw_shape(shape, rng),
        turn=float(rng.uniform(0, 2 * np.pi)),
        texture=texture,
        texture_params=texture_params,
        polarity=polarity,
        colour=colour,
        anomaly=anomaly,
        centre=(home + offset - camera) % spec.size,
        radius=radius,
        camera=camera,
        background_exponent=float(_uniform(rng, exponent)),
        background_seed=int(rng.integers(2**31)),
        background_level=level,
        tint=rng.uniform(-0.05, 0.05, 3),
        occluder=np.array([rng.integers(2), rng.uniform(0, spec.size), rng.uniform(0.15, 0.22)]),
        sound=_sound_class(spec, job.label, np.random.default_rng([spec.seed, 0xC, job.index, 1])),
    )


# --- rendering ---------------------------------------------------------------------------


def fractal_spectra(n: int, exponent: float, rng: np.random.Generator, count: int) -> Array:
    """``count`` Fourier spectra of periodic n x n textures, amplitude ~ 1/f^exponent,
    scaled so that each texture has unit standard deviation."""
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n), indexing="ij"))
    f[0, 0] = 1.0
    amp = f**-exponent
    amp[0, 0] = 0.0
    spectra = np.fft.fft2(rng.standard_normal((count, n, n))) * amp
    sd = np.fft.ifft2(spectra).real.std(axis=(1, 2), keepdims=True)
    out: Array = spectra / np.maximum(sd, 1e-12)
    return out


def shifted_textures(spectra: Array, shift: Array) -> Array:
    """The textures moved by ``shift`` (T, 2) px (x, y), sub-pixel, wrapping: (T, count, n, n)."""
    k = np.fft.fftfreq(spectra.shape[-1])
    ramp_x = np.exp(-2j * np.pi * k[None, :] * shift[:, :1])  # (T, n) over columns
    ramp_y = np.exp(-2j * np.pi * k[None, :] * shift[:, 1:])  # (T, n) over rows
    ramp = ramp_y[:, None, :, None] * ramp_x[:, None, None, :]
    out: Array = np.fft.ifft2(spectra[None] * ramp).real
    return out


_CHROMA = np.array([[1.0, -1.0, 0.0], [1.0, 1.0, -2.0]]) / np.array([[np.sqrt(2)], [np.sqrt(6)]])


def _background(spec: DemoCSpec, scene: Scene) -> tuple[Array, Array]:
    """(background (T, n, n, 3), occluder texture (T, n, n)), both moving with the camera."""
    rng = np.random.default_rng(scene.background_seed)
    e = scene.background_exponent
    luminance = fractal_spectra(spec.size, e, rng, 2)
    spectra = np.concatenate([luminance, fractal_spectra(spec.size, e + 0.5, rng, 2)])
    tex = shifted_textures(spectra, -scene.camera)  # luminance, occluder, 2 x smoother chroma
    mean, lum_sd, chroma_sd = scene.background_level
    chroma = np.einsum("tcij,ck->tijk", tex[:, 2:4], _CHROMA)
    rgb = mean + scene.tint + lum_sd * tex[:, 0, ..., None] + chroma_sd * chroma
    return rgb, (1 - mean) + 0.12 * tex[:, 1]


def _wrapped(d: Array, n: int) -> Array:
    out: Array = (d + n / 2) % n - n / 2
    return out


def _sample_periodic(tile: Array, x: Array, y: Array) -> Array:
    """Bilinear sample of a periodic 2-D ``tile`` at float pixel coordinates."""
    n = tile.shape[0]
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = x - x0, y - y0
    x0, y0, x1, y1 = x0 % n, y0 % n, (x0 + 1) % n, (y0 + 1) % n
    top = tile[y0, x0] * (1 - fx) + tile[y0, x1] * fx
    out: Array = top * (1 - fy) + (tile[y1, x0] * (1 - fx) + tile[y1, x1] * fx) * fy
    return out


def _surface(scene: Scene, u: Array, v: Array) -> Array:
    """Brightness factor of the object's texture at object coordinates (radii)."""
    if scene.texture == "stripes":
        freq, angle, phase = scene.texture_params
        along = u * np.cos(angle) + v * np.sin(angle)
        out: Array = 1 + 0.2 * np.sin(2 * np.pi * freq * along + phase)
        return out
    if scene.texture == "noise":
        rng = np.random.default_rng(int(scene.texture_params[0]))
        tile = np.fft.ifft2(fractal_spectra(16, 1.0, rng, 1)[0]).real
        out = 1 + 0.2 * _sample_periodic(tile, (u + 1) * 6, (v + 1) * 6)
        return out
    return np.ones_like(u)


def _object(spec: DemoCSpec, scene: Scene) -> tuple[Array, Array]:
    """(alpha (T, n, n), colour (T, n, n, 3)) of the object, wrapping around the frame."""
    n = spec.size
    grid = np.arange(n, dtype=np.float64) + 0.5
    dx = _wrapped(grid[None, None, :] - scene.centre[:, 0, None, None], n)
    dy = _wrapped(grid[None, :, None] - scene.centre[:, 1, None, None], n)
    r = scene.radius[:, None, None]
    c, s = np.cos(scene.turn), np.sin(scene.turn)
    u, v = (dx * c + dy * s) / r, (dy * c - dx * s) / r
    alpha = np.clip(0.5 - shape_distance(scene.shape, scene.shape_params, u, v) * r, 0, 1)
    if scene.anomaly == "absent":
        alpha = np.zeros_like(alpha)
    return alpha, _surface(scene, u, v)[..., None] * scene.colour


def _occluder_alpha(spec: DemoCSpec, scene: Scene) -> Array:
    axis, centre, half = scene.occluder
    grid = np.arange(spec.size, dtype=np.float64) + 0.5
    pos = centre - scene.camera[:, int(axis)]
    a = np.clip(half * spec.size + 0.5 - np.abs(_wrapped(grid - pos[:, None], spec.size)), 0, 1)
    band: Array = a[:, None, :] if axis == 0 else a[:, :, None]  # axis 0: a vertical band
    return band


def render_frames(spec: DemoCSpec, scene: Scene) -> Array:
    """The clip's frames, (T, size, size, 3) uint8 RGB."""
    background, occluder = _background(spec, scene)
    alpha, colour = _object(spec, scene)
    a = alpha[..., None]
    frames = background * (1 - a) + colour * a
    if scene.anomaly == "occluded":
        o = _occluder_alpha(spec, scene)[..., None]
        frames = frames * (1 - o) + occluder[..., None] * o
    out: Array = np.round(np.clip(frames, 0, 1) * 255).astype(np.uint8)
    return out


def sound_parameters(spec: DemoCSpec, sound: int, test: bool) -> tuple[float, float]:
    """(click rate Hz, band centre Hz) of sound class ``sound`` (test split: shifted)."""
    shift = spec.test_sound_shift if test else 1.0
    rate = spec.click_rate * spec.click_ratio**sound * shift
    return rate, spec.band_hz * spec.band_ratio**sound * shift


def _burst(sr: int, centre: float, rng: np.random.Generator, octaves: float = 0.3) -> Array:
    """One click: 30 ms of noise, band-passed around ``centre`` Hz, decaying, peak 1."""
    n = int(0.03 * sr)
    x = _band(rng.standard_normal(4 * n), sr, centre, octaves)[:n]
    x *= np.exp(-np.arange(n) / (0.006 * sr))
    out: Array = x / max(float(np.abs(x).max()), 1e-9)
    return out


def _clicks(n: int, sr: int, rate: float, centre: float, rng: np.random.Generator) -> Array:
    """Clicks at ``rate`` Hz, random onset, 3 % timing jitter, each in the ``centre`` band."""
    period = 1.0 / rate
    times = rng.uniform(0, period) + np.arange(int(n / sr / period) + 1) * period
    times = times + rng.normal(0, 0.03 * period, len(times))
    x = np.zeros(n + sr)
    for start in (times * sr).astype(np.int64):
        if 0 <= start < n:
            burst = _burst(sr, centre, rng)
            x[start : start + len(burst)] += burst
    return x[:n]


def _band(x: Array, sr: int, centre: float, octaves: float) -> Array:
    f = np.fft.rfftfreq(len(x), 1.0 / sr)
    gain = np.exp(-0.5 * (np.log2(np.maximum(f, 1.0) / centre) / octaves) ** 2)
    out: Array = np.fft.irfft(np.fft.rfft(x) * gain, len(x))
    return out


def render_sound(spec: DemoCSpec, scene: Scene) -> Array | None:
    """The clip's sound (float32 mono, ``seconds`` long); ``None`` when audio is absent."""
    if scene.sound < 0:
        return None
    rng = np.random.default_rng([spec.seed, 0xC, scene.job.index, 2])
    n, sr = int(round(spec.seconds * spec.sample_rate)), spec.sample_rate
    rate, centre = sound_parameters(spec, scene.sound, scene.job.split == "test")
    rate *= rng.uniform(0.95, 1.05)
    clicks = _clicks(n, sr, rate, centre * rng.uniform(0.93, 1.07), rng)
    clicks *= rng.uniform(0.4, 0.6) / max(float(np.abs(clicks).max()), 1e-9)
    floor = _band(rng.standard_normal(n), sr, 1000.0, octaves=2.0)
    floor *= rng.uniform(0.002, 0.006) / max(float(floor.std()), 1e-9)
    out: Array = (clicks + floor).astype(np.float32)
    return out


# --- files -------------------------------------------------------------------------------


def _encode_video(box: Any, frames: Array, fps: float) -> list[Any]:
    import av

    stream = box.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
    stream.width, stream.height = frames.shape[2], frames.shape[1]
    stream.pix_fmt = "yuv420p"
    stream.codec_context.gop_size = 1  # all-intra: no sharpness decay to show the time
    stream.codec_context.thread_count = 1
    stream.options = {"crf": "16"}
    packets = []
    for i, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = i
        packets += stream.encode(frame)
    return packets + list(stream.encode())


def _encode_audio(box: Any, sound: Array, sample_rate: int) -> list[Any]:
    import av

    stream = box.add_stream("aac", rate=sample_rate, layout="mono")
    stream.bit_rate = 64000
    packets = []
    for start in range(0, len(sound), 1024):
        chunk = np.ascontiguousarray(sound[None, start : start + 1024])
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = sample_rate, start
        packets += stream.encode(frame)
    return packets + list(stream.encode())


def encode_mp4(frames: Array, sound: Array | None, fps: float, sample_rate: int) -> bytes:
    """An MP4 (H.264 all-intra yuv420p; AAC mono when ``sound`` is given) as bytes."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as box:
        packets = _encode_video(box, frames, fps)
        if sound is not None:
            packets += _encode_audio(box, sound, sample_rate)
        for packet in packets:
            box.mux(packet)
    return buf.getvalue()


def make_clip(job: tuple[DemoCSpec, ClipJob, str]) -> dict[str, Any]:
    """Render, encode and write one clip; returns its ``labels.csv`` row."""
    spec, clip, out = job
    scene = draw_scene(spec, clip)
    data = encode_mp4(
        render_frames(spec, scene), render_sound(spec, scene), spec.fps, spec.sample_rate
    )
    path = Path(out) / clip.rel
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data, fsync=False)
    return label_row(spec, scene)


def label_row(spec: DemoCSpec, scene: Scene) -> dict[str, Any]:
    row: dict[str, Any] = {
        "path": scene.job.rel,
        "label": scene.job.label,
        "class": CLASSES[scene.job.label],
        "split": scene.job.split,
        "shape": scene.shape,
        "texture": scene.texture,
        "polarity": scene.polarity,
        "anomaly": scene.anomaly,
    }
    if spec.audio != "absent":
        row["sound"] = scene.sound
    return row


def write_index(out: Path, spec: DemoCSpec, rows: Sequence[dict[str, Any]]) -> None:
    """classInd.txt, trainlist.txt / testlist.txt, labels.csv and demo.json."""
    names = CLASSES[: spec.classes]
    atomic_write_text(out / "classInd.txt", "".join(f"{i + 1} {c}\n" for i, c in enumerate(names)))
    for split in ("train", "test"):
        lines = [f"{r['path']} {r['label'] + 1}\n" for r in rows if r["split"] == split]
        atomic_write_text(out / f"{split}list.txt", "".join(lines))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "labels.csv", buf.getvalue())
    atomic_write_json(out / "demo.json", {**asdict(spec), "style": "c", "actions": list(names)})


def _run_jobs(jobs: list[Any], workers: int, progress: bool) -> list[dict[str, Any]]:
    from tqdm import tqdm

    if workers <= 1:
        return [make_clip(j) for j in tqdm(jobs, unit="clip", disable=not progress)]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        done = pool.map(make_clip, jobs, chunksize=16)
        return list(tqdm(done, total=len(jobs), unit="clip", disable=not progress))


def make_demo_c(
    out: str | Path,
    *,
    clips: int = 1200,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = False,
    **options: Any,
) -> Path:
    """Write the style-c demo dataset to ``out``; returns ``out``. ``options`` are
    :class:`DemoCSpec` fields; ``workers``: processes (``None`` = all cores from 200 clips
    on, ``0`` / ``1`` = this process; with a pool, call it under ``__main__``)."""
    known = set(DemoCSpec.__dataclass_fields__) - {"clips", "seed"}
    unknown = set(options) - known
    if unknown:
        raise DataError(f"unknown demo option(s) {sorted(unknown)}; known: {sorted(known)}")
    spec = DemoCSpec(clips=clips, seed=seed, **options)
    jobs = plan_clips(spec)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if workers is None:
        workers = (os.cpu_count() or 1) if clips >= 200 else 0
    rows = _run_jobs([(spec, j, str(out)) for j in jobs], workers, progress)
    write_index(out, spec, rows)
    return out
