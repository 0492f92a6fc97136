"""How a demo clip looks and sounds (elo.data.demo_data describes the dataset): the
background texture, the object (a digit or a glyph), its action's trajectory, the
distractors and the camera (:func:`_render`), the class sound with its loudness
envelope (:func:`_sound`), and the MP4 that holds them (:func:`write_mp4`).
:func:`make_clip` makes one clip of a :func:`~elo.data.demo_spec.plan`.
"""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from elo.data.demo_spec import ACTIONS, ClipPlan, DemoSpec
from elo.rundir import atomic_write_bytes

_GLYPHS = "AEFGJKLPRSZ2457"


def _texture(rng: np.random.Generator, size: int, style: str) -> np.ndarray:
    """H,W,3 float background of ``2*size`` per side (the camera pans over it), low
    contrast so the moving object carries most of the frame-to-frame change. Style
    ``a``: smooth colour blobs plus grain; ``b``: random-orientation stripes plus
    checker noise."""
    import cv2

    big = 2 * size
    if style == "a":
        coarse = rng.uniform(0, 1, (8, 8, 3)).astype(np.float32)
        fine = rng.uniform(0, 1, (big // 4, big // 4, 1)).astype(np.float32)
        bg = 0.6 * cv2.resize(coarse, (big, big), interpolation=cv2.INTER_CUBIC)
        bg += 0.4 * cv2.resize(fine, (big, big), interpolation=cv2.INTER_LINEAR)[..., None]
    else:
        yy, xx = np.mgrid[0:big, 0:big].astype(np.float32)
        th, period = rng.uniform(0, np.pi), rng.uniform(6, 16)
        stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(th) + yy * np.sin(th)) / period)
        cells = rng.uniform(0, 1, (big // 8, big // 8, 3)).astype(np.float32)
        checker = cv2.resize(cells, (big, big), interpolation=cv2.INTER_NEAREST)
        bg = 0.5 * stripes[..., None] + 0.5 * checker
    mid, half = rng.uniform(80, 170), rng.uniform(12, 30)
    tint = rng.uniform(0.8, 1.2, 3)
    texture: np.ndarray = np.clip((mid + half * (2 * np.clip(bg, 0, 1) - 1)) * tint, 0, 255)
    return texture


def _sprite(
    rng: np.random.Generator, digit: np.ndarray, style: str, px: int, split: str
) -> tuple[np.ndarray, int | None]:
    """px,px float alpha in [0, 1] and, for glyphs, their identity: the digit (style
    ``a``) or a Hershey-font glyph (``b``; the test split uses another font)."""
    import cv2

    if style == "a":
        img = cv2.resize((digit / 16.0).astype(np.float32), (px, px), interpolation=cv2.INTER_CUBIC)
        return np.clip(img, 0, 1), None
    canvas = np.zeros((4 * px, 4 * px), np.uint8)
    glyph = int(rng.integers(len(_GLYPHS)))
    ch = _GLYPHS[glyph]
    fonts = (
        [cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX]
        if split == "train"
        else [cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_COMPLEX]
    )
    font = int(rng.choice(fonts))
    (w, h), _ = cv2.getTextSize(ch, font, px / 10, 1)
    org = ((4 * px - w) // 2, (4 * px + h) // 2)
    cv2.putText(canvas, ch, org, font, px / 10, 255, max(2, px // 6), cv2.LINE_AA)
    ys, xs = np.nonzero(canvas)
    crop = canvas[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    side = max(crop.shape)
    sq = np.zeros((side, side), np.uint8)
    y0, x0 = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
    sq[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]] = crop
    return cv2.resize(sq, (px, px), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0, glyph


def _trajectory(
    action: str, t: np.ndarray, rng: np.random.Generator, moving: bool, size: int, style: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame (x, y, angle_deg, scale) for an action; ``t`` is the frame index and
    speeds are in pixels of the ``size``-pixel video. Start position, angle and scale
    are uniform for every class, so no single frame reveals the action."""
    n = len(t)
    x0, y0 = rng.uniform(0, size, 2)
    a0 = rng.uniform(0, 360)
    s0 = rng.uniform(0.8, 1.1)
    m = 1.0 if moving else 0.0
    x, y = np.full(n, x0), np.full(n, y0)
    ang, scale = np.full(n, a0), np.full(n, s0)
    k = size / 64  # speeds below are for 64 px videos
    if style == "a":
        pos = rng.uniform(5.0, 8.0) * k * m * t  # constant speed, px
    else:  # speed varies along the clip (a push, then coasting)
        v0, v1 = rng.uniform(3.0, 9.0, 2) * k * m
        pos = v0 * t + (v1 - v0) * t**2 / (2 * max(1, n - 1))
    if action == "right":
        x = x0 + pos
    elif action == "left":
        x = x0 - pos
    elif action == "up":
        y = y0 - pos
    elif action == "down":
        y = y0 + pos
    elif action in ("spin_cw", "spin_ccw"):
        lo, hi = (22, 36) if style == "a" else (16, 30)
        w = rng.uniform(lo, hi) * m * (-1 if action == "spin_cw" else 1)  # deg / frame
        ang = a0 + w * t
    elif action == "pulse":
        period = rng.uniform(4, 8) if style == "a" else rng.uniform(6, 10)
        amp = 0.4 if style == "a" else 0.5
        scale = s0 * (1 + amp * m * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi)))
    elif action == "orbit":
        r = rng.uniform(10, 16) * k
        r2 = r if style == "a" else r * rng.uniform(0.5, 0.8)  # b: elliptic
        w = rng.uniform(5.0, 8.0) * k / r * m * rng.choice([-1, 1])
        ph, tilt = rng.uniform(0, 2 * np.pi), rng.uniform(0, np.pi)
        u, v = r * np.cos(w * t + ph), r2 * np.sin(w * t + ph)
        x = x0 + u * np.cos(tilt) - v * np.sin(tilt)
        y = y0 + u * np.sin(tilt) + v * np.cos(tilt)
    return x, y, ang, scale


def _distractor_mask(size: int, q: np.ndarray, r: float, square: bool) -> np.ndarray:
    """H,W float32 mask of a distractor at ``q`` (x, y): a square of half-side ``r`` or a
    disc of radius ``r``."""
    import cv2

    mask = np.zeros((size, size), np.float32)
    x, y = int(round(q[0])), int(round(q[1]))
    if square:
        cv2.rectangle(mask, (x - int(r), y - int(r)), (x + int(r), y + int(r)), 1.0, -1)
    else:
        cv2.circle(mask, (x, y), int(round(r)), 1.0, -1, cv2.LINE_AA)
    return mask


def _render(
    digit: np.ndarray,
    spec: DemoSpec,
    action: str,
    rng: np.random.Generator,
    moving: bool,
    envelope: np.ndarray,
    split: str,
) -> tuple[np.ndarray, int | None]:
    """T,H,W,3 uint8 frames (and the glyph identity for style ``b``): a camera panning
    (with jitter) over a per-clip texture, ``distractors`` small shapes drifting in
    random directions, and the object doing the action, high-contrast against the
    background."""
    import cv2

    size, style = spec.size, spec.style
    n = int(round(spec.seconds * spec.fps))
    bg = _texture(rng, size, style)
    px = int(round(size * spec.object_fraction))
    sprite, glyph = _sprite(rng, digit, style, px, split)
    canvas = np.zeros((size, size), np.float32)
    c = size // 2
    canvas[c - px // 2 : c - px // 2 + px, c - px // 2 : c - px // 2 + px] = sprite
    bright = rng.uniform() < 0.5
    color = rng.uniform(0, 1, 3) * 60 + (190.0 if bright else 0.0)
    # camera: pan at up to 1.5 px/frame (64 px video) in a random direction, plus jitter
    k = size / 64
    pan = rng.uniform(0, 1.5 * k) * np.array([np.cos(th := rng.uniform(0, 2 * np.pi)), np.sin(th)])
    cam = rng.uniform(0.25 * size, 0.75 * size, 2) + pan * np.arange(n)[:, None]
    cam += rng.normal(0, 0.7 * k, (n, 2))
    cam = np.clip(np.round(cam), 0, size - 1).astype(int)
    ds = []
    for _ in range(spec.distractors):
        r = rng.uniform(2.5, 5.0) * k
        p0, sp = rng.uniform(0, size, 2), rng.uniform(1.0, 5.0) * k
        d = sp * np.array([np.cos(a := rng.uniform(0, 2 * np.pi)), np.sin(a)])
        ds.append((r, p0, d, rng.uniform(40, 220, 3), style == "b" and rng.uniform() < 0.5))
    frames = np.empty((n, size, size, 3), np.uint8)
    traj = _trajectory(action, np.arange(n, dtype=np.float64), rng, moving, size, style)
    for i, (x, y, a, s) in enumerate(zip(*traj, strict=True)):
        img = bg[cam[i, 1] : cam[i, 1] + size, cam[i, 0] : cam[i, 0] + size].copy()
        for r, p0, d, col, square in ds:
            mask = _distractor_mask(size, (p0 + d * i) % size, r, square)
            img = img * (1 - mask[..., None]) + col * mask[..., None]
        mat = cv2.getRotationMatrix2D((c, c), float(a), float(s))
        alpha = cv2.warpAffine(canvas, mat, (size, size), flags=cv2.INTER_LINEAR)
        alpha = np.roll(alpha, (int(round(y)) - c, int(round(x)) - c), axis=(0, 1))  # wraps
        gain = 0.7 + 0.3 * envelope[i]
        img = img * (1 - alpha[..., None]) + (color * gain) * alpha[..., None]
        frames[i] = np.clip(img, 0, 255).astype(np.uint8)
    return frames, glyph


def _sound(
    label: int,
    split: str,
    spec: DemoSpec,
    rng: np.random.Generator,
    audible: bool,
    env_rate: float,
    env_phase: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Mono audio (N float32) and the loudness envelope sampled at the video frames."""
    sr = spec.sample_rate
    t = np.arange(int(round(spec.seconds * sr))) / sr
    env = 0.5 + 0.5 * np.sin(2 * np.pi * env_rate * t + env_phase)
    semis = 7 * label + (
        rng.uniform(-1, 1) if split == "train" else rng.choice([-1, 1]) * rng.uniform(1, 2)
    )
    f0 = 180.0 * 2 ** (semis / 12)
    harmonics = [1.0, 0.5, 0.25] if split == "train" else [1.0, 0.0, 0.35, 0.0, 0.2]
    tone = sum(
        h * np.sin(2 * np.pi * f0 * (k + 1) * t)
        for k, h in enumerate(harmonics)
        if f0 * (k + 1) < sr / 2
    )
    tone = np.asarray(tone) / sum(harmonics)
    noise = rng.normal(0, 1, len(t))
    noise = np.convolve(noise, np.ones(4) / 4, mode="same") * rng.uniform(0.02, 0.08)
    loud = rng.uniform(0.3, 0.6)
    audio = noise + (loud * (0.2 + 0.8 * env) * tone if audible else 0.0)
    frame_t = np.arange(int(round(spec.seconds * spec.fps))) / spec.fps
    env_frames = 0.5 + 0.5 * np.sin(2 * np.pi * env_rate * frame_t + env_phase)
    return np.clip(audio, -1, 1).astype(np.float32), env_frames


def write_mp4(
    path: Path, frames: np.ndarray, fps: float, audio: np.ndarray, sample_rate: int
) -> None:
    """H.264 all-intra (``gop_size=1``: no codec arrow of time) + AAC, atomically."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        vs.width, vs.height, vs.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        vs.codec_context.gop_size = 1
        vs.options = {"crf": "18", "preset": "ultrafast", "threads": "1"}
        as_ = out.add_stream("aac", rate=sample_rate)
        as_.layout = "mono"
        for f in frames:
            out.mux(vs.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(vs.encode(None))
        chunk = as_.codec_context.frame_size or 1024
        for i in range(0, len(audio), chunk):
            af = av.AudioFrame.from_ndarray(
                audio[None, i : i + chunk].copy(), format="fltp", layout="mono"
            )
            af.sample_rate, af.pts, af.time_base = sample_rate, i, Fraction(1, sample_rate)
            out.mux(as_.encode(af))
        out.mux(as_.encode(None))
    atomic_write_bytes(path, buf.getvalue())


def make_clip(args: tuple[DemoSpec, ClipPlan, str]) -> dict[str, Any]:
    spec, p, out = args
    digits = _digits()
    rng = np.random.default_rng([spec.seed, 2, p.index])
    action = ACTIONS[p.label]
    moving = bool(rng.uniform() >= spec.motion_dropout)
    audible = bool(rng.uniform() >= spec.sound_dropout)
    env_rate, env_phase = rng.uniform(0.7, 2.5), rng.uniform(0, 2 * np.pi)
    audio, env = _sound(p.label, p.split, spec, rng, audible, env_rate, env_phase)
    frames, glyph = _render(digits[p.digit], spec, action, rng, moving, env, p.split)
    rel = f"{action}/{action}_{p.index:05d}.mp4"
    write_mp4(Path(out) / rel, frames, spec.fps, audio, spec.sample_rate)
    return {
        "path": rel,
        "label": p.label,
        "class": action,
        "identity": p.identity if glyph is None else glyph,
        "split": p.split,
        "motion_cue": int(moving),
        "sound_cue": int(audible),
    }


_DIGITS: np.ndarray | None = None


def _digits() -> np.ndarray:
    global _DIGITS
    if _DIGITS is None:
        from sklearn.datasets import load_digits

        _DIGITS = load_digits().images.astype(np.float32)  # 1797,8,8 in 0..16
    return _DIGITS
