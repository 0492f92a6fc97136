"""Datasets: labeled UCF101-style folders with split lists, unlabeled folders, CSV
manifests, deterministic splits, and DataLoader batches that follow the contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _media import moving_square, tone, write_video

from elo.config import load_config
from elo.data.datasets import make_loader, open_dataset
from elo.data.layouts import scan, select_split
from elo.errors import DataError


def _cfg() -> dict:
    return load_config("demo", ["data.clip.size=32", "data.clip.frames=4"])


@pytest.fixture(scope="module")
def ucf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """root/<class>/<clip>.avi, 2 classes x 3 clips; one clip without audio."""
    root = tmp_path_factory.mktemp("ucf") / "ucf"
    for c, speed in (("Jump", (0, 3)), ("Run", (3, 0))):
        for i in range(3):
            audio = None if (c, i) == ("Run", 2) else tone(1.0, 300 + 200 * i)
            frames = moving_square(8, 32, 40, speed=speed, seed=i)
            write_video(root / c / f"v_{c}_g01_c{i}.avi", frames, fps=8.0, audio=audio)
    (root / "classInd.txt").write_text("1 Run\n2 Jump\n")
    (root / "trainlist01.txt").write_text(
        "Run/v_Run_g01_c0.avi 1\nRun/v_Run_g01_c2.avi 1\nJump/v_Jump_g01_c0.avi 2\n"
    )
    (root / "testlist01.txt").write_text(
        "Run/v_Run_g01_c1.avi\nJump/v_Jump_g01_c1.avi\nJump/v_Jump_g01_c2.avi\n"
    )
    return root


def test_labeled_folder_batches_follow_the_contract(ucf: Path, tmp_path: Path) -> None:
    loader = make_loader(
        _cfg(), ucf, split="train", batch_size=3, shuffle=False, cache_dir=tmp_path
    )
    ds = loader.dataset
    assert ds.class_names == ["Run", "Jump"] and ds.num_classes == 2  # type: ignore[attr-defined]
    assert ds.label_names == []  # type: ignore[attr-defined]
    (batch,) = list(loader)
    assert batch["rgb"].shape == (3, 3, 4, 32, 32) and batch["rgb"].dtype == torch.float32
    assert batch["flow"].shape == (3, 2, 3, 32, 32)
    assert 0.5 < float(batch["flow"].pow(2).mean().sqrt()) < 2  # in units of the data's RMS
    assert batch["audio"].shape[:2] == (3, 1) and batch["audio"].dim() == 4
    meta = batch["meta"]
    rels = [Path(p).relative_to(ucf).as_posix() for p in meta["path"]]
    assert sorted(rels) == sorted(
        ["Run/v_Run_g01_c0.avi", "Run/v_Run_g01_c2.avi", "Jump/v_Jump_g01_c0.avi"]
    )
    want = [0 if r.startswith("Run") else 1 for r in rels]
    assert meta["label"].tolist() == want and meta["label"].dtype == torch.int64
    assert meta["start"].dtype == torch.float64 and meta["clip_id"][0].endswith("#0")
    # the silent clip: audio marked missing, its rows zero; the others present
    silent = [r == "Run/v_Run_g01_c2.avi" for r in rels]
    assert batch["present"]["audio"].tolist() == [not s for s in silent]
    assert batch["present"]["rgb"].all() and batch["present"]["flow"].all()
    assert batch["audio"][torch.tensor(silent)].abs().sum() == 0
    assert batch["audio"][~torch.tensor(silent)].abs().sum() > 0


def test_split_lists_partition_the_folder(ucf: Path, tmp_path: Path) -> None:
    cfg = _cfg()
    train = open_dataset(cfg, ucf, split="train", cache_dir=tmp_path, modalities=("rgb",))
    test = open_dataset(cfg, ucf, split="test", cache_dir=tmp_path, modalities=("rgb",))
    full = open_dataset(cfg, ucf, split=None, cache_dir=tmp_path, modalities=("rgb",))
    a = {it[0].rel for it in train.items}
    b = {it[0].rel for it in test.items}
    assert not a & b and len(a | b) == len(full) == 6
    assert sorted(test.targets().tolist()) == [0, 1, 1]
    with pytest.raises(DataError, match="no split 'val'"):
        open_dataset(cfg, ucf, split="val", cache_dir=tmp_path)


def test_unlabeled_tree_and_csv_manifest(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    write_video(root / "x" / "deep" / "a.mp4", moving_square(8, 32, 32), 8.0, tone(1.0))
    write_video(root / "b.mkv", moving_square(8, 32, 32, seed=2), 8.0)
    ds = open_dataset(_cfg(), root, cache_dir=tmp_path / "c1", modalities=("rgb", "audio"))
    assert ds.num_classes == 0 and len(ds) == 2 and set(ds.targets().tolist()) == {-1}
    assert sorted(it[0].rel for it in ds.items) == ["b.mkv", "x/deep/a.mp4"]

    manifest = tmp_path / "list.csv"
    manifest.write_text("path,class,speaker\nraw/b.mkv,dog,ann\nraw/x/deep/a.mp4,cat,bob\n")
    ds = open_dataset(_cfg(), manifest, cache_dir=tmp_path / "c2", modalities=("rgb",))
    assert ds.class_names == ["cat", "dog"] and ds.label_names == ["speaker"]
    by_rel = {it[0].rel: it[0] for it in ds.items}
    assert by_rel["raw/b.mkv"].label == 1 and by_rel["raw/b.mkv"].labels == {"speaker": 0}
    loader = make_loader(
        _cfg(),
        manifest,
        batch_size=2,
        shuffle=False,
        modalities=("rgb",),
        cache_dir=tmp_path / "c2",
    )
    batch = next(iter(loader))
    assert set(batch["meta"]["labels"]) == {"speaker"} and "flow" not in batch
    with pytest.raises(DataError, match="no label column 'colour'"):
        ds.targets("colour")


def test_deterministic_stratified_split_without_lists(tmp_path: Path) -> None:
    from elo.data.layouts import VideoIndex, VideoRecord

    recs = [
        VideoRecord(tmp_path / f"{c}/{i}.mp4", f"{c}/{i}.mp4", c)
        for c in range(3)
        for i in range(10)
    ]
    index = VideoIndex(tmp_path, recs, ["a", "b", "c"], [], {})
    tr, te = select_split(index, "train", seed=1), select_split(index, "test", seed=1)
    assert {r.rel for r in tr} | {r.rel for r in te} == {r.rel for r in recs}
    assert not {r.rel for r in tr} & {r.rel for r in te}
    assert np.bincount([r.label for r in te]).tolist() == [2, 2, 2]  # 20% of each class
    assert [r.rel for r in select_split(index, "test", seed=1)] == [r.rel for r in te]
    assert [r.rel for r in select_split(index, "test", seed=2)] != [r.rel for r in te]


def test_worker_processes_and_seeded_shuffle(ucf: Path, tmp_path: Path) -> None:
    cfg = _cfg()
    kw = dict(
        split=None, batch_size=2, shuffle=True, cache_dir=tmp_path, modalities=("rgb", "flow")
    )
    a = [b["meta"]["clip_id"] for b in make_loader(cfg, ucf, seed=3, workers=0, **kw)]  # type: ignore[arg-type]
    b = [b["meta"]["clip_id"] for b in make_loader(cfg, ucf, seed=3, workers=2, **kw)]  # type: ignore[arg-type]
    c = [b["meta"]["clip_id"] for b in make_loader(cfg, ucf, seed=4, workers=0, **kw)]  # type: ignore[arg-type]
    assert a == b and a != c and sorted(sum(a, [])) == sorted(sum(c, []))
    x0 = next(iter(make_loader(cfg, ucf, seed=3, workers=0, **kw)))  # type: ignore[arg-type]
    x2 = next(iter(make_loader(cfg, ucf, seed=3, workers=2, **kw)))  # type: ignore[arg-type]
    assert torch.equal(x0["rgb"], x2["rgb"]) and torch.equal(x0["flow"], x2["flow"])


def test_scan_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere"):
        scan(tmp_path / "nowhere")
    bad = tmp_path / "m.csv"
    bad.write_text("file,label\na.mp4,1\n")
    with pytest.raises(DataError, match="'path' column"):
        scan(bad)
    cfg = load_config("demo", ["data.root=null"])
    with pytest.raises(DataError, match="data.root"):
        open_dataset(cfg, None)
