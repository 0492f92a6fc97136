"""Datasets of video clips read from the extraction cache, and their DataLoader.

Sources: every layout of :func:`elo.data.layouts.scan` (CSV manifest, Kinetics CSVs, UCF101
and HMDB51 split lists, mmaction2-style ``path label`` lists, labeled or unlabeled
folders); ``split`` / ``data.fold`` pick the clips (:func:`elo.data.layouts.select_split`).
Batches follow the shared contract (see ``collate``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from elo.config import require
from elo.data.cache import ClipCache, ExtractSpec, read_npy_row, spec_from_config
from elo.data.layouts import VideoIndex, VideoRecord, scan, select_split
from elo.data.video import VIDEO_SUFFIXES
from elo.errors import DataError

log = logging.getLogger(__name__)


class ClipDataset(Dataset[dict[str, Any]]):
    """Clips of ``records`` read row by row from the cache; one item = one clip.

    Videos that were skipped at extraction have no clips here (counted in
    ``skipped``). Items are dicts ``{modality: tensor, "present": {...}, "meta": {...}}``.
    """

    def __init__(
        self,
        index: VideoIndex,
        records: Sequence[VideoRecord],
        cache_dir: str | Path,
        spec: ExtractSpec,
        crop: tuple[int, int] | None = None,
    ) -> None:
        from elo.model.modality import MODALITIES

        self.index = index
        self.spec = spec
        self.modalities = list(spec.modalities)
        self.classes = {m: MODALITIES.get(m) for m in self.modalities}
        self.tags = {m: spec.modality_tag(m) for m in self.modalities}
        # crop: (frames, size) the items are centre-cropped to (the cache holds
        # data.clip.extra_frames / extra_pixels more, for train-time random windows)
        frames, size = crop if crop is not None else (spec.frames, spec.size)
        self.crop = crop
        self.shapes = {
            m: tuple(
                self.classes[m].output_shape(
                    frames, size, spec.fps, spec.sample_rate, spec.modalities[m]
                )
            )
            for m in self.modalities
        }
        self.items: list[tuple[VideoRecord, str, int, float]] = []  # record, dir, clip, start
        self.present: dict[str, dict[str, list[bool]]] = {}
        #: per cache entry, the cached frames that are the video's own (a video shorter
        #: than a cached clip is padded with its last frame: windows and centre crops
        #: stay inside the real frames, docs/learning.md)
        self.valid_frames: dict[str, int] = {}
        self.skipped: list[tuple[str, str]] = []
        self._index_clips(records, ClipCache(cache_dir), spec)
        # modality params for to_tensor; a modality scaled by the data (flow) gets the
        # scale measured once per cache and stored there (modalities/flow.py)
        self.params: dict[str, dict[str, Any]] = {
            m: dict(spec.modalities[m]) for m in self.modalities
        }
        for m in self.modalities:
            if getattr(self.classes[m], "scaled_by_data", False) and (
                self.params[m]["norm"] == "rms"  # configs/data/*.yaml: flow.norm
            ):
                self.params[m]["scale"] = self._data_scale(Path(cache_dir), m)

    def _index_clips(self, records: Sequence[VideoRecord], cache: Any, spec: ExtractSpec) -> None:
        """The cached clips of ``records`` (``self.items``), their present modalities and
        real frames; a record without a usable cache entry is skipped with its reason."""
        for rec in records:
            try:
                entry = cache.entry(rec.path, spec, rec.window)
            except DataError as exc:
                self.skipped.append((rec.rel, str(exc)))
                continue
            info = entry.clips()
            if info is not None and info.get("error"):  # a remembered skip: say why
                self.skipped.append((rec.rel, str(info["error"])))
                continue
            if info is None or not all(entry.has(t) for t in self.tags.values()):
                self.skipped.append((rec.rel, "not extracted (run elo-extract)"))
                continue
            d = str(entry.dir)
            self.present[d] = {m: entry.read_present(t) for m, t in self.tags.items()}
            self.valid_frames[d] = spec.frames - int(info.get("padded", 0) or 0)
            for i, start in enumerate(info["starts"]):
                self.items.append((rec, d, i, float(start)))

    def _data_scale(self, cache_dir: Path, m: str, sample: int = 128) -> float:
        """Root mean square of modality ``m``'s cached values over up to ``sample``
        evenly spaced clips, stored as ``<cache>/<tag>.scale.json`` by the first dataset
        that measures it and read back by every later one (train and test splits of
        one cache share it)."""
        import json

        from elo.rundir import atomic_write_json

        path = cache_dir / f"{self.tags[m]}.scale.json"
        if path.exists():
            try:
                return float(json.loads(path.read_text(encoding="utf-8"))["scale"])
            except (OSError, ValueError, KeyError, TypeError):
                pass  # unreadable: measure again
        have = [it for it in self.items if self.present[it[1]][m][it[2]]]
        if not have:
            return 1.0
        step = max(1, len(have) // sample)
        sq, n = 0.0, 0
        for _, d, k, _ in have[::step][:sample]:
            arr = self._row(d, m, k)
            if arr is not None:
                a = np.asarray(arr, dtype=np.float64)
                sq, n = sq + float((a * a).sum()), n + a.size
        scale = float(f"{np.sqrt(sq / max(n, 1)):.3g}") if sq > 0 else 1.0
        what = f"RMS of cached {m} (elo.data.datasets.ClipDataset)"
        clips = len(have[::step][:sample])
        atomic_write_json(path, {"scale": scale, "clips": clips, "what": what})
        return scale

    # -- labels -----------------------------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        return list(self.index.class_names)

    @property
    def num_classes(self) -> int:
        return len(self.index.class_names)

    @property
    def label_names(self) -> list[str]:
        """Names of the other label columns (e.g. ``identity``)."""
        return list(self.index.label_names)

    def targets(self, name: str = "label") -> np.ndarray:
        """int64 per clip: the class (``label``) or another label column."""
        if name == "label":
            return np.array([it[0].label for it in self.items], dtype=np.int64)
        if name not in self.index.label_names:
            known = ", ".join(["label", *self.index.label_names])
            raise DataError(f"{self.index.root}: no label column {name!r}; known: {known}")
        return np.array([it[0].labels[name] for it in self.items], dtype=np.int64)

    # -- items ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.items)

    def _row(self, d: str, m: str, k: int) -> np.ndarray | None:
        try:
            return read_npy_row(Path(d) / f"{self.tags[m]}.npy", k)
        except FileNotFoundError:  # no clip of this video has the modality
            return None

    def __getitem__(self, i: int) -> dict[str, Any]:
        rec, d, k, start = self.items[i]
        out: dict[str, Any] = {}
        present: dict[str, bool] = {}
        for m in self.modalities:
            ok = self.present[d][m][k]
            arr = self._row(d, m, k) if ok else None
            if arr is None:
                out[m] = torch.zeros(self.shapes[m], dtype=torch.float32)
                ok = False
            else:
                params = {**self.params[m], "valid_frames": self.valid_frames[d]}
                out[m] = self.classes[m].to_tensor(arr, params)
                if self.crop is not None:
                    out[m] = self._centre(out[m], self.shapes[m], self.valid_frames[d])
            present[m] = ok
        out["present"] = present
        stem = (
            rec.rel.rsplit(".", 1)[0] if Path(rec.rel).suffix.lower() in VIDEO_SUFFIXES else rec.rel
        )
        if rec.window is not None:  # one file, several rows (Kinetics): ids stay unique
            stem = f"{stem}@{rec.window[0]:g}-{rec.window[1]:g}"
        out["meta"] = {
            "clip_id": f"{stem}#{k}",
            "path": str(rec.path),
            "start": start,
            "label": rec.label,
            "labels": dict(rec.labels),
            "valid_frames": self.valid_frames[d],
        }
        return out

    def _centre(self, x: torch.Tensor, shape: tuple[int, ...], valid: int) -> torch.Tensor:
        """The centre crop of one item, its time window centred on its real frames."""
        from elo.model.views import crop_clips, valid_time_fraction

        if tuple(x.shape) == tuple(shape):
            return x
        assert self.crop is not None
        frac = valid_time_fraction(torch.tensor([0.5]), valid, self.spec.frames, self.crop[0])
        return crop_clips(x[None], shape, frac)[0]


def collate(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack items into the batch dict of the shared contract."""
    if not samples:
        raise DataError("cannot collate an empty batch")
    mods = [k for k in samples[0] if k not in ("present", "meta")]
    batch: dict[str, Any] = {m: torch.stack([s[m] for s in samples]) for m in mods}  # B,...
    batch["present"] = {
        m: torch.tensor([bool(s["present"][m]) for s in samples], dtype=torch.bool) for m in mods
    }
    metas = [s["meta"] for s in samples]
    names = list(metas[0]["labels"])
    batch["meta"] = {
        "clip_id": [mt["clip_id"] for mt in metas],
        "path": [mt["path"] for mt in metas],
        "start": torch.tensor([mt["start"] for mt in metas], dtype=torch.float64),
        "label": torch.tensor([mt["label"] for mt in metas], dtype=torch.int64),
        "valid_frames": torch.tensor([int(mt.get("valid_frames", 0)) for mt in metas]),
        "labels": {
            n: torch.tensor([mt["labels"][n] for mt in metas], dtype=torch.int64) for n in names
        },
    }
    return batch


def default_cache_dir(root: str | Path) -> Path:
    """``<root>-cache`` next to a folder; ``<stem>-cache`` next to a CSV manifest."""
    root = Path(root)
    if root.suffix.lower() == ".csv":
        return root.parent / f"{root.stem}-cache"
    return root.parent / f"{root.name}-cache"


def _root_and_cache(
    cfg: Mapping[str, Any], root: str | Path | None, cache_dir: str | Path | None
) -> tuple[Path, Path]:
    """``root=None`` means the config's ``data.root`` (cache ``data.cache``); a
    given root caches next to itself unless ``cache_dir`` is given."""
    data = cfg.get("data", cfg)
    if root is None:
        if not data.get("root"):
            raise DataError("no dataset given: pass --data DIR or set data.root in the config")
        root = Path(str(data["root"]))
        if cache_dir is None and data["cache"]:
            cache_dir = Path(str(data["cache"]))
    root = Path(root)
    return root, Path(cache_dir) if cache_dir is not None else default_cache_dir(root)


def open_dataset(
    cfg: Mapping[str, Any],
    root: str | Path | None = None,
    *,
    split: str | None = None,
    modalities: Sequence[str] | None = None,
    cache_dir: str | Path | None = None,
    extract: bool = True,
    extract_workers: int | None = 0,
    seed: int = 0,
    uncropped: bool = False,
) -> ClipDataset:
    """The clips of ``split`` of a dataset, extracting whatever the cache lacks first
    (``extract_workers`` processes; ``0`` = in this process, ``None`` = all cores).
    ``modalities``: those to load (default: the packaged default objective's,
    :func:`elo.model.modality.default_modalities`).

    With ``data.clip.extra_frames`` / ``extra_pixels`` the cache holds longer, larger
    clips; items are centre-cropped to ``clip.frames`` x ``clip.size`` unless
    ``uncropped`` (training: the model cuts random windows, :mod:`elo.model.network`)."""
    from elo.data.extract import extract_paths
    from elo.model.modality import default_modalities

    root, cache_dir = _root_and_cache(cfg, root, cache_dir)
    mods = list(modalities) if modalities is not None else list(default_modalities())
    spec = spec_from_config(cfg, mods)
    index = scan(root)
    fold = int(require(cfg.get("data", cfg), "fold", int))
    # the split ignores the loader seed
    records = select_split(index, split, fold=fold, seed=spec.seed)
    if not records:
        raise DataError(f"{root}: no videos for split {split!r} (fold {fold})")
    if extract:
        cache = ClipCache(cache_dir)
        todo = []
        for r in records:
            try:
                if not cache.complete(cache.entry(r.path, spec, r.window), spec):
                    todo.append((r.path, r.window))
            except DataError:
                continue  # reported by the dataset as skipped
        if todo:
            log.info("extracting %d videos into %s", len(todo), cache_dir)
            extract_paths(todo, cache_dir, spec, workers=extract_workers, progress=False)
    ds = ClipDataset(index, records, cache_dir, spec, None if uncropped else clip_crop(cfg))
    if ds.skipped:
        log.warning(
            "%s: %d videos have no clips (first: %s: %s)", root, len(ds.skipped), *ds.skipped[0]
        )
    if len(ds) == 0:
        raise DataError(
            f"{root}: no usable clips for split {split!r} (see {cache_dir}/extract_report.jsonl)"
        )
    return ds


def clip_crop(cfg: Mapping[str, Any]) -> tuple[int, int] | None:
    """(frames, size) the model sees when the cache holds more (``data.clip.extra_*``)."""
    clip = require(cfg.get("data", cfg), "clip", dict)
    if not (int(clip["extra_frames"]) or int(clip["extra_pixels"])):
        return None
    return int(clip["frames"]), int(clip["size"])


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    torch.set_num_threads(1)


def make_loader(
    cfg: Mapping[str, Any],
    root: str | Path | None = None,
    *,
    split: str | None = None,
    modalities: Sequence[str] | None = None,
    batch_size: int,
    shuffle: bool,
    workers: int = 0,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    drop_last: bool = False,
    extract_workers: int | None = 0,
    uncropped: bool = False,
) -> DataLoader[dict[str, Any]]:
    """A DataLoader of contract batches over the cached clips of ``root`` (see
    :func:`open_dataset`); ``workers`` loader processes, shuffling seeded by ``seed``.
    The dataset is ``loader.dataset`` (``num_classes``, ``class_names``, ``label_names``)."""
    ds = open_dataset(
        cfg,
        root,
        split=split,
        modalities=modalities,
        cache_dir=cache_dir,
        extract_workers=extract_workers,
        seed=seed,
        uncropped=uncropped,
    )
    gen = torch.Generator()
    gen.manual_seed(seed)
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=workers,
        collate_fn=collate,
        generator=gen,
        worker_init_fn=_seed_worker if workers > 0 else None,
        persistent_workers=workers > 0,
        drop_last=drop_last,
    )


def drop_absent_modalities(cfg: dict[str, Any], root: str | Path | None = None) -> list[str]:
    """Remove from ``cfg["objective"]["modalities"]`` (and the fitness references) every
    modality that *no* training clip has, e.g. audio in a dataset of silent videos, so a
    search runs without those terms instead of training on masks; returns the removed
    modalities. Extracts the training split if needed (the search needs it anyway)."""
    from elo.model.modality import configured_modalities

    obj = cfg.setdefault("objective", {})
    mods = configured_modalities(cfg)
    ds = open_dataset(cfg, root, split="train", modalities=mods, extract_workers=None)
    absent = [
        m for m in mods if m != "rgb" and not any(any(p[m]) for p in ds.present.values() if m in p)
    ]
    if absent:
        obj["modalities"] = [m for m in mods if m not in absent]
        fit = cfg.get("fitness") or {}
        if isinstance(fit.get("references"), list):
            fit["references"] = [m for m in fit["references"] if m not in absent]
            if not fit["references"]:
                raise DataError(
                    f"{root}: the {fit.get('kind')} fitness needs {', '.join(absent)}, which no "
                    "clip has; use --fitness zipf or weak"
                )
    return absent
