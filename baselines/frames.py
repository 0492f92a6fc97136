"""Images for the baseline trainers: an image folder, or frames of a video folder.

Files are found recursively. When every file sits in a first-level subfolder, the
subfolder names are the class labels (``root/<class>/<file>``, UCF101 style) and are
used for evaluation only; otherwise the labels are -1. Each image (or each of
``frames_per_video`` evenly spaced frames of a video, decoded with PyAV) is resized
on its short side and centre-cropped to ``size`` x ``size``. Unreadable files are
skipped with a logged, counted reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from elo.errors import DataError

log = logging.getLogger(__name__)

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp"}
VIDEO_EXTS = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v"}


@dataclass
class FrameSet:
    images: torch.Tensor  # N,3,S,S uint8
    labels: torch.Tensor  # N int64, -1 = unlabeled
    classes: list[str]
    sources: list[str]
    skipped: dict[str, str] = field(default_factory=dict)  # path -> reason


def _square(img: torch.Tensor, size: int) -> torch.Tensor:
    """3,H,W uint8 -> 3,size,size: short side to ``size``, centre crop."""
    from torchvision.transforms.v2 import functional as TF

    img = TF.resize(img, size, antialias=True)
    out: torch.Tensor = TF.center_crop(img, [size, size])
    return out


def _read_image(path: Path) -> torch.Tensor:
    from torchvision.io import ImageReadMode, decode_image, read_file

    img: torch.Tensor = decode_image(read_file(str(path)), mode=ImageReadMode.RGB)
    return img  # 3,H,W uint8


def _read_video_frames(path: Path, count: int) -> list[torch.Tensor]:
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    if not frames:
        raise ValueError("no decodable frames")
    idx = np.linspace(0, len(frames) - 1, num=min(count, len(frames))).round().astype(int)
    return [torch.from_numpy(frames[i]).permute(2, 0, 1).contiguous() for i in idx]


def _files(root: Path, max_files: int, split: str | None, fold: int) -> list[Path]:
    """The image and video files :func:`load_frames` reads, sorted (at most
    ``max_files`` when > 0; only split ``split`` of a video dataset when given)."""
    if not root.is_dir():
        raise DataError(f"--data {root}: not a folder; give a folder of images or videos")
    if split is not None:
        from elo.data.layouts import scan, select_split

        files = sorted(r.path for r in select_split(scan(root), split, fold=fold))
    else:  # through symlinked folders, loops skipped (elo/data/discover.py)
        from elo.data.discover import walk_media

        found = walk_media(root, IMAGE_EXTS | VIDEO_EXTS)
        files = [p for p in found.files if p.is_file()]
    if max_files > 0:
        files = files[:max_files]
    if not files:
        seen = f": {found.summary('images or videos')}" if split is None else ""
        raise DataError(
            f"--data {root}: no images ({', '.join(sorted(IMAGE_EXTS))}) or videos "
            f"({', '.join(sorted(VIDEO_EXTS))}) found{seen}"
        )
    return files


def load_frames(
    root: str | Path,
    *,
    size: int,
    frames_per_video: int = 8,
    max_files: int = 0,
    split: str | None = None,
    fold: int = 1,
) -> FrameSet:
    """All images / video frames under ``root`` as one uint8 tensor N,3,size,size.

    ``split`` (e.g. ``"train"``) keeps only the videos of that split of a video dataset
    (its split column or ``<split>list*.txt``, else ELo's deterministic hash split; see
    :func:`elo.data.layouts.select_split`; official fold ``fold``), so a baseline pre-trains on
    exactly the clips the ELo model trains on and never sees the test videos.
    """
    root = Path(root)
    files = _files(root, max_files, split, fold)
    rel = [p.relative_to(root) for p in files]
    labeled = all(len(r.parts) >= 2 for r in rel)
    classes = sorted({r.parts[0] for r in rel}) if labeled else []
    images: list[torch.Tensor] = []
    labels: list[int] = []
    sources: list[str] = []
    skipped: dict[str, str] = {}
    for path, r in zip(files, rel, strict=True):
        try:
            if path.suffix.lower() in IMAGE_EXTS:
                raw = [_read_image(path)]
            else:
                raw = _read_video_frames(path, frames_per_video)
        except Exception as exc:  # a broken file is skipped, not fatal
            skipped[str(path)] = f"{type(exc).__name__}: {exc}"
            log.warning("skipping %s: %s", path, skipped[str(path)])
            continue
        for img in raw:
            images.append(_square(img, size))
            labels.append(classes.index(r.parts[0]) if labeled else -1)
            sources.append(str(r))
    if not images:
        raise DataError(f"--data {root}: none of {len(files)} files could be read")
    if skipped:
        log.warning("skipped %d of %d files under %s", len(skipped), len(files), root)
    return FrameSet(
        torch.stack(images), torch.tensor(labels, dtype=torch.long), classes, sources, skipped
    )
