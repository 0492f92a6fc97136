"""Style c demo data (elo/data/demo_c.py): motion per class, shapes, textures and the
drawn scene."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from elo.data.demo_c_spec import (
    _DIAGONALS,
    ANOMALIES,
    CLASSES,
    TEST_SHAPES,
    TEXTURES,
    TRAIN_SHAPES,
    Array,
    ClipJob,
    DemoCSpec,
    Range,
    Scene,
)
from elo.errors import DataError


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
