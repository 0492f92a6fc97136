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
from collections.abc import Sequence
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from elo.data.demo_c_scene import draw_scene, shape_distance
from elo.data.demo_c_spec import CLASSES, Array, ClipJob, DemoCSpec, Scene, plan_clips
from elo.errors import DataError
from elo.rundir import atomic_write_bytes, atomic_write_json, atomic_write_text


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
