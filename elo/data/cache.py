"""On-disk cache of extracted modality tensors.

One entry per (video file identity, decode parameters)::

    <cache>/<h[:2]>/<h>/clips.json          clip starts, or the reason the file was skipped
    <cache>/<h[:2]>/<h>/<mod>-<p>.npy       all clips of one modality, N,... (read row by row)
    <cache>/<h[:2]>/<h>/<mod>-<p>.json      per-clip "present" flags: written last = committed

``h`` hashes the file's resolved path (symlinks followed), size and mtime with the decode
parameters (frames, fps, size, sample rate, clip sampling); ``p`` hashes one modality's
parameters. Random clip starts are seeded from ``h`` (not from the path as typed), and
``clips.json`` is written once per entry and never rewritten under existing modality
arrays: every modality of an entry is cut at the same frames, however the file was named
and whichever modalities each run asked for.
So a second run decodes nothing, a changed parameter re-extracts only what it affects,
and a touched file is re-extracted. Every file is written with
:func:`elo.rundir.atomic_write_bytes` (a temp name, then a rename; no fsync: a cache
can be rebuilt, and an fsync per file slowed extraction up to 2x): a kill leaves
finished entries intact, and a refused write is one line naming the file.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import io
import json
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from elo.errors import ConfigError, DataError
from elo.rundir import atomic_write_bytes, pid_alive

#: bump when the on-disk layout or an extraction algorithm changes meaning
CACHE_VERSION = 2  # 2: clip starts seeded by file identity; short clips padded

#: (start, end) seconds of an untrimmed video that a dataset row covers (Kinetics)
Window = tuple[float, float]


def _write_json(path: Path, obj: Any) -> None:
    """Compact JSON, keys sorted (the cache's format; run folders indent theirs)."""
    atomic_write_bytes(path, (json.dumps(obj, sort_keys=True) + "\n").encode("utf-8"), fsync=False)


def _digest(obj: Any, n: int = 20) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()[:n]


@dataclass(frozen=True)
class ExtractSpec:
    """Everything that determines the cached tensors of one file."""

    frames: int = 8  # T
    fps: float = 8.0
    size: int = 64
    sample_rate: int = 16000
    per_video: int = 1
    sampling: str = "uniform"  # uniform | random | sliding
    stride: int = 0
    seed: int = 0
    max_seconds: float | None = 300.0  # decode at most this much of a file (None: all)
    short: str = "pad"  # pad | skip: a video shorter than one clip
    modalities: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def decode_params(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "fps": float(self.fps),
            "size": self.size,
            "sample_rate": self.sample_rate,
            "per_video": self.per_video,
            "sampling": self.sampling,
            "stride": self.stride,
            "seed": self.seed,
            "max_seconds": self.max_seconds,
            "short": self.short,
            "version": CACHE_VERSION,
        }

    def modality_tag(self, name: str) -> str:
        """``<name>-<digest of its extraction parameters>`` (load-only ones left out)."""
        from elo.model.modality import MODALITIES

        skip = set(MODALITIES.get(name).load_only) if name in MODALITIES else set()
        params = {k: v for k, v in self.modalities[name].items() if k not in skip}
        return f"{name}-{_digest(params, 10)}"

    def with_modalities(self, names: Sequence[str]) -> ExtractSpec:
        return dataclasses.replace(self, modalities={n: self.modalities[n] for n in names})


def spec_from_config(
    cfg: Mapping[str, Any], modalities: Sequence[str] | None = None
) -> ExtractSpec:
    """The extraction spec of an experiment config (its ``data`` section) or of a bare
    data section. Modality parameters: ``data.modalities.<name>.<key>`` overrides."""
    from elo.config import require
    from elo.config_values import check_values
    from elo.model.modality import MODALITIES, default_modalities

    data = cfg["data"] if "data" in cfg and isinstance(cfg["data"], Mapping) else cfg
    require(data, "clip", dict)  # a mapping, its keys read below
    mod_over = require(data, "modalities", dict)
    mods: dict[str, dict[str, Any]] = {}
    for name in modalities if modalities is not None else default_modalities():
        cls = MODALITIES.get(name)
        mods[name] = cls.params(mod_over.get(name) or {})
    sampling = str(require(data, "clip.sampling", str))
    if sampling not in ("uniform", "random", "sliding"):
        raise ConfigError(f"data.clip.sampling {sampling!r}: use uniform, random or sliding")
    short = str(require(data, "clip.short", str))
    if short not in ("pad", "skip"):
        raise ConfigError(f"data.clip.short {short!r}: use pad or skip")
    check_values(data, "data.")  # every number in range (elo/config_values.py)
    max_seconds = require(data, "max_seconds", (int, float, type(None)))
    spec = ExtractSpec(
        # extra_*: cached beyond what the model sees, for train-time random windows
        frames=int(require(data, "clip.frames", int))
        + int(require(data, "clip.extra_frames", int)),
        fps=float(require(data, "clip.fps", float)),
        size=int(require(data, "clip.size", int)) + int(require(data, "clip.extra_pixels", int)),
        sample_rate=int(require(data, "audio.sample_rate", int)),
        per_video=int(require(data, "clip.per_video", int)),
        sampling=sampling,
        stride=int(require(data, "clip.stride", int)),
        seed=int(require(data, "clip.seed", int)),
        max_seconds=None if max_seconds is None else float(max_seconds),
        short=short,
        modalities=mods,
    )
    if spec.frames < 2:
        raise ConfigError("data.clip.frames must be >= 2 (flow needs two frames)")
    return spec


def file_identity(path: str | Path) -> dict[str, Any]:
    """Resolved path, size and mtime (of the symlink target); :class:`DataError` with
    the reason if the file is unusable. ``dir/x.mp4``, ``./dir/../dir/x.mp4``, the
    absolute path and a symlink to it are one identity."""
    p = Path(path)
    try:
        st = os.stat(p)  # follows symlinks
    except FileNotFoundError:
        reason = "broken symlink" if p.is_symlink() else "file not found"
        raise DataError(f"{p}: {reason}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DataError(f"{p}: symlink loop") from None
        raise DataError(f"{p}: cannot stat ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise DataError(f"{p}: is a directory, not a video file")
    if st.st_size == 0:
        raise DataError(f"{p}: zero-length file")
    return {"path": os.path.realpath(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


#: parsed .npy headers by their raw bytes: every entry of a modality shares one layout
_NPY_HEADERS: dict[bytes, tuple[tuple[int, ...], np.dtype[Any]]] = {}


def read_npy_row(path: Path, k: int) -> np.ndarray:
    """Row ``k`` of an ``N,...`` .npy file, reading only that row (no memory map, and
    the header parsed once per layout): the cached epoch's hot path."""
    with open(path, "rb") as fh:
        head = fh.read(10)
        if head[:6] != b"\x93NUMPY" or head[6] != 1:
            return np.array(np.load(path, mmap_mode="r")[k])
        hlen = int.from_bytes(head[8:10], "little")
        raw = fh.read(hlen)
        if raw not in _NPY_HEADERS:
            fh.seek(6 + 2)  # after the magic string and the version bytes
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            if fortran:
                return np.array(np.load(path, mmap_mode="r")[k])
            _NPY_HEADERS[raw] = (tuple(shape), dtype)
        shape, dtype = _NPY_HEADERS[raw]
        if not 0 <= k < shape[0]:
            raise IndexError(f"{path}: row {k} of {shape[0]}")
        row = int(np.prod(shape[1:])) * dtype.itemsize
        fh.seek(10 + hlen + k * row)
        data = fh.read(row)
    return np.frombuffer(data, dtype=dtype).reshape(shape[1:])


@dataclass
class CacheEntry:
    """One file's folder in the cache."""

    dir: Path
    source: Path
    key: str = ""  # the identity + decode-parameter hash (the folder's name)

    def clip_seed(self, seed: int) -> list[int]:
        """Seed words for random clip starts: the config seed and the entry's identity,
        so the starts never depend on how the path was typed."""
        return [int(seed), int((self.key or self.dir.name)[:8], 16)]

    @property
    def clips_file(self) -> Path:
        return self.dir / "clips.json"

    def clips(self) -> dict[str, Any] | None:
        try:
            return dict(json.loads(self.clips_file.read_text(encoding="utf-8")))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def has(self, tag: str) -> bool:
        return (self.dir / f"{tag}.json").exists()

    def forget(self) -> None:
        """Remove the entry's files (a remembered skip being retried)."""
        if self.dir.is_dir():
            for f in self.dir.iterdir():
                if f.is_file():
                    f.unlink(missing_ok=True)

    def write_clips(self, info: Mapping[str, Any]) -> None:
        _write_json(self.clips_file, dict(info))

    def write_modality(self, tag: str, arrays: Sequence[np.ndarray | None]) -> None:
        """Stack per-clip arrays (``None`` = missing -> zeros, present=False)."""
        present = [a is not None for a in arrays]
        ref = next((a for a in arrays if a is not None), None)
        if ref is not None:
            stack = np.stack([a if a is not None else np.zeros_like(ref) for a in arrays])
            buf = io.BytesIO()
            np.save(buf, stack, allow_pickle=False)
            atomic_write_bytes(self.dir / f"{tag}.npy", buf.getvalue(), fsync=False)
        meta = {"present": present, "shape": list(ref.shape) if ref is not None else None}
        _write_json(self.dir / f"{tag}.json", meta)

    def read_present(self, tag: str) -> list[bool]:
        return list(json.loads((self.dir / f"{tag}.json").read_text(encoding="utf-8"))["present"])

    def open_array(self, tag: str) -> np.ndarray | None:
        """The memory-mapped ``N,...`` array, or ``None`` if no clip has the modality."""
        p = self.dir / f"{tag}.npy"
        if not p.exists():
            return None
        array: np.ndarray = np.load(p, mmap_mode="r", allow_pickle=False)
        return array


class ClipCache:
    """The cache folder; see the module docstring for the layout."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def entry(
        self, path: str | Path, spec: ExtractSpec, window: Window | None = None
    ) -> CacheEntry:
        """The entry of ``path`` (of its ``window`` = (start, end) seconds of an
        untrimmed video: one entry per window, docs/datasets.md)."""
        ident = file_identity(path)
        key: dict[str, Any] = {"file": ident, "decode": spec.decode_params()}
        if window is not None:
            key["window"] = [float(window[0]), float(window[1])]
        h = _digest(key)
        return CacheEntry(dir=self.root / h[:2] / h, source=Path(path), key=h)

    def complete(self, entry: CacheEntry, spec: ExtractSpec) -> bool:
        info = entry.clips()
        if info is None:
            return False
        if info.get("error"):
            return True  # a remembered failure: nothing to extract
        return all(entry.has(spec.modality_tag(m)) for m in spec.modalities)

    def report_path(self) -> Path:
        return self.root / "extract_report.jsonl"

    def check_writable(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise DataError(f"cache folder {self.root}: not writable ({exc.strerror})") from None


#: ``.<name>.<pid>.<random>.tmp`` (elo.rundir.temp_prefix); older temps had no pid
_TEMP_PID = re.compile(r"^\..+\.(\d+)\.[a-z0-9_]+\.tmp$")


def clear_stale_temps(root: str | Path) -> int:
    """Remove temp files that dead processes left behind (``.<name>.<pid>.*.tmp``; a
    temp without a pid is from an older ELo, also stale); a live writer's temp files
    are kept. Returns the count removed."""
    n = 0
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            if not (f.startswith(".") and f.endswith(".tmp")):
                continue
            m = _TEMP_PID.match(f)
            if m is not None and pid_alive(int(m.group(1))):
                continue
            try:
                os.unlink(os.path.join(dirpath, f))
                n += 1
            except OSError:
                pass
    return n
