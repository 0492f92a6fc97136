"""The built-in audio-visual demo dataset (``elo-data demo --out DIR``).

Each clip is a real MP4 (H.264 all-intra + AAC, via PyAV): a real handwritten digit
(scikit-learn ``load_digits``, from the UCI "Optical Recognition of Handwritten
Digits" set) moving over a textured background, with a sound.

* **class = action**, a motion pattern: slide right / left / up / down (wrapping
  around the edges), spin clockwise / counter-clockwise, pulse (grow-shrink), orbit.
  Position, angle and scale of every class cover the same ranges, so no single frame
  reveals the action.
* **sound**: a class-specific pitch (7 semitones apart) with a harmonic timbre; its
  loudness envelope is shared with the digit's brightness (audio-visual sync).
* **nuisance**: the digit (``identity`` column), its colour, the background, the
  envelope rate. The test split uses other digit instances, other pitches (shifted
  1-2 semitones) and another timbre (odd harmonics), so probes measure generalization.
* **imperfect cues**: in ``motion_dropout`` of the clips the digit does not move, in
  ``sound_dropout`` the class sound is absent (noise only), independently; the CSV
  records both (``motion_cue``, ``sound_cue``). No modality alone is perfect.
* **class frequencies**: Zipf (``p(rank) ∝ rank^-zipf``) in the unlabeled training
  pool, balanced in the test split.

Layout (UCF101-like): ``<out>/<class>/<class>_<n>.mp4``, ``classInd.txt``,
``trainlist.txt``, ``testlist.txt``, ``labels.csv`` (path, label, class, identity,
split, motion_cue, sound_cue) and ``demo.json`` (the generation parameters).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from elo.data.demo_render import make_clip, write_mp4
from elo.data.demo_spec import ACTIONS, STYLES, ClipPlan, DemoSpec, plan, zipf_counts
from elo.errors import DataError
from elo.rundir import atomic_write_json, atomic_write_text

__all__ = [
    "ACTIONS",
    "STYLES",
    "ClipPlan",
    "DemoSpec",
    "make_demo",
    "plan",
    "write_mp4",
    "zipf_counts",
]


def make_demo(
    out: str | Path,
    *,
    clips: int = 1200,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = False,
    **options: Any,
) -> Path:
    """Write the demo dataset to ``out`` (see the module docstring); returns ``out``.
    ``options`` are :class:`DemoSpec` fields (classes, zipf, test_fraction, size, ...).
    ``workers``: processes (``None`` = all cores from 200 clips on, ``0``/``1`` = this
    process). With a pool, call it under ``if __name__ == "__main__":``."""
    if options.get("style") == "c":  # an independent generator (elo/data/demo_c.py)
        from elo.data.demo_c import make_demo_c

        rest = {k: v for k, v in options.items() if k != "style"}
        return make_demo_c(out, clips=clips, seed=seed, workers=workers, progress=progress, **rest)
    from sklearn.datasets import load_digits

    unknown = set(options) - set(DemoSpec.__dataclass_fields__)
    if unknown:
        known = sorted(DemoSpec.__dataclass_fields__)
        raise DataError(f"unknown demo option(s) {sorted(unknown)}; known: {known}")
    spec = DemoSpec(clips=clips, seed=seed, **options)
    if clips < spec.classes * 2:
        raise DataError(f"demo needs at least {spec.classes * 2} clips, got {clips}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plans = plan(spec, load_digits().target)
    jobs = [(spec, p, str(out)) for p in plans]
    if workers is None:  # a pool pays off only for larger sets (spawn imports per worker)
        workers = (os.cpu_count() or 1) if clips >= 200 else 0
    n = workers
    rows: list[dict[str, Any]]
    if n <= 1:
        rows = [make_clip(j) for j in _progress(jobs, progress)]
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(n, mp_context=mp.get_context("spawn")) as pool:
            rows = list(_progress(pool.map(make_clip, jobs, chunksize=16), progress, len(jobs)))
    _write_index(out, spec, rows)
    return out


def _progress(it: Any, on: bool, total: int | None = None) -> Any:
    from tqdm import tqdm

    return tqdm(it, total=total, unit="clip", disable=not on)


def _write_index(out: Path, spec: DemoSpec, rows: Sequence[dict[str, Any]]) -> None:
    names = ACTIONS[: spec.classes]
    atomic_write_text(out / "classInd.txt", "".join(f"{i + 1} {c}\n" for i, c in enumerate(names)))
    for split in ("train", "test"):
        lines = [f"{r['path']} {r['label'] + 1}\n" for r in rows if r["split"] == split]
        atomic_write_text(out / f"{split}list.txt", "".join(lines))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out / "labels.csv", buf.getvalue())
    atomic_write_json(out / "demo.json", {**asdict(spec), "actions": list(names)})
