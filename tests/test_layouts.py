"""Dataset layouts of the field (UCF101, HMDB51, Kinetics CSV, mmaction2-style
``path label`` lists) and their fold rules, on small generated fixtures of real videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _media import moving_square, write_video

from elo.cli import extract_main
from elo.config import load_config
from elo.data.datasets import open_dataset
from elo.data.layouts import scan, select_split
from elo.errors import DataError

CLASSES = ["Jump", "Run", "Swim"]


def _video(path: Path, seed: int) -> None:
    write_video(path, moving_square(16, 32, 32, speed=(2, 0), seed=seed), fps=8.0)


def _cfg(fold: int = 1) -> dict:
    return load_config("demo", ["data.clip.size=32", "data.clip.frames=4", f"data.fold={fold}"])


def _rels(recs) -> set[str]:
    return {r.rel for r in recs}


@pytest.fixture(scope="module")
def ucf101(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The official UCF101 layout: UCF-101/<class>/v_<class>_gGG_cCC.avi and
    ucfTrainTestlist/{classInd,trainlist0N,testlist0N}.txt; fold N tests group N."""
    root = tmp_path_factory.mktemp("ucf101") / "UCF-101"
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    for c, name in enumerate(CLASSES):
        for g in (1, 2, 3):
            _video(root / name / f"v_{name}_g{g:02d}_c01.avi", seed=10 * c + g)
    # classInd order differs from the alphabetical one: it must win
    order = ["Swim", "Jump", "Run"]
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {n}\n" for i, n in enumerate(order)))
    for fold in (1, 2, 3):
        train = [
            f"{n}/v_{n}_g{g:02d}_c01.avi {order.index(n) + 1}\n"
            for n in CLASSES
            for g in (1, 2, 3)
            if g != fold
        ]
        test = [f"{n}/v_{n}_g{fold:02d}_c01.avi\n" for n in CLASSES]
        (lists / f"trainlist0{fold}.txt").write_text("".join(train))
        (lists / f"testlist0{fold}.txt").write_text("".join(test))
    return root


def test_ucf101_official_lists_give_three_folds(ucf101: Path) -> None:
    index = scan(ucf101)
    assert index.layout == "ucf101" and index.fold_numbers == [1, 2, 3]
    assert index.class_names == ["Swim", "Jump", "Run"]
    assert {r.label for r in index.records if r.rel.startswith("Swim/")} == {0}
    for fold in (1, 2, 3):
        train = _rels(select_split(index, "train", fold=fold))
        test = _rels(select_split(index, "test", fold=fold))
        assert test == {f"{n}/v_{n}_g{fold:02d}_c01.avi" for n in CLASSES}
        assert not train & test and len(train) == 6
    with pytest.raises(DataError, match=r"no fold 4 in this ucf101 layout \(folds: 1, 2, 3\)"):
        select_split(index, "test", fold=4)


def test_fold_reaches_the_dataset_through_the_config(ucf101: Path, tmp_path: Path) -> None:
    ds = open_dataset(_cfg(2), ucf101, split="test", cache_dir=tmp_path, modalities=("rgb",))
    assert {it[0].rel for it in ds.items} == {f"{n}/v_{n}_g02_c01.avi" for n in CLASSES}
    assert sorted(ds.targets().tolist()) == [0, 1, 2]
    with pytest.raises(DataError, match="no fold 5"):
        open_dataset(_cfg(5), ucf101, split="test", cache_dir=tmp_path, modalities=("rgb",))


@pytest.fixture(scope="module")
def hmdb51(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """HMDB51: <class>/<clip>.avi and testTrainMulti_7030_splits/<class>_test_splitN.txt
    with 1 = train, 2 = test, 0 = unused."""
    root = tmp_path_factory.mktemp("hmdb") / "hmdb51"
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    for c, name in enumerate(["brush_hair", "cartwheel"]):
        clips = [f"{name}_{i}.avi" for i in range(4)]
        for i, clip in enumerate(clips):
            _video(root / name / clip, seed=10 * c + i)
        for fold in (1, 2, 3):
            # fold N: clip N-1 is test, clip 3 is unused, the rest train
            ids = ["2" if i == fold - 1 else "0" if i == 3 else "1" for i in range(4)]
            text = "".join(f"{clip} {k} \n" for clip, k in zip(clips, ids, strict=True))
            (splits / f"{name}_test_split{fold}.txt").write_text(text)
    return root


def test_hmdb51_split_files(hmdb51: Path) -> None:
    index = scan(hmdb51)
    assert index.layout == "hmdb51" and index.fold_numbers == [1, 2, 3]
    assert index.class_names == ["brush_hair", "cartwheel"]
    for fold in (1, 2, 3):
        test = _rels(select_split(index, "test", fold=fold))
        train = _rels(select_split(index, "train", fold=fold))
        assert test == {f"{n}/{n}_{fold - 1}.avi" for n in index.class_names}
        assert len(train) == 4 and not train & test
        assert not any(r.endswith("_3.avi") for r in train | test)  # "0" = unused


@pytest.fixture(scope="module")
def kinetics(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Kinetics: annotations/{train,validate}.csv (label,youtube_id,time_start,time_end,
    split) and videos trimmed as <split>/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4;
    one train row has no video (as in every real Kinetics copy)."""
    root = tmp_path_factory.mktemp("k") / "kinetics"
    (root / "annotations").mkdir(parents=True)
    head = "label,youtube_id,time_start,time_end,split,is_cc\n"
    rows = {"train": [], "validate": []}
    n = 0
    for split, count in (("train", 3), ("validate", 1)):
        for label in ("riding a bike", "abseiling"):
            for _ in range(count):
                yid, t0 = f"yid{n:04d}_x", 10 * n
                rows[split].append(f"{label},{yid},{t0},{t0 + 10},{split},0\n")
                folder = "val" if split == "validate" else split
                _video(root / folder / label / f"{yid}_{t0:06d}_{t0 + 10:06d}.mp4", seed=n)
                n += 1
    rows["train"].append("abseiling,missing_vid,0,10,train,0\n")
    for split, lines in rows.items():
        (root / "annotations" / f"{split}.csv").write_text(head + "".join(lines))
    return root


def test_kinetics_csv(kinetics: Path, tmp_path: Path) -> None:
    index = scan(kinetics)
    assert index.layout == "kinetics" and index.fold_numbers == [1]
    assert index.class_names == ["abseiling", "riding a bike"]  # sorted, as the field does
    train, test = select_split(index, "train"), select_split(index, "test")
    assert len(train) == 6 and len(test) == 2  # the row without a video is dropped
    assert {r.split for r in test} == {"val"}  # no test split: Kinetics tests on val
    assert all(r.rel.startswith("val/") and r.window is None for r in test)
    assert sorted(r.label for r in train) == [0, 0, 0, 1, 1, 1]
    assert scan(kinetics / "annotations" / "validate.csv").records[0].rel.startswith("val/")
    ds = open_dataset(_cfg(), kinetics, split="test", cache_dir=tmp_path, modalities=("rgb",))
    assert len(ds) == 2 and sorted(ds.targets().tolist()) == [0, 1]


def _untrimmed(path: Path, seconds: int = 8, fps: float = 8.0) -> None:
    """A long video whose frame ``i`` has brightness ``20 + 3 i``: a clip's pixels say
    which seconds of the file it came from."""
    n = int(seconds * fps)
    levels = (20 + 3 * np.arange(n)).astype(np.uint8)
    write_video(path, np.broadcast_to(levels[:, None, None, None], (n, 32, 32, 3)).copy(), fps=fps)


def test_untrimmed_kinetics_videos_are_sampled_inside_their_windows(tmp_path: Path) -> None:
    """An untrimmed ``<youtube_id>.mp4`` gives only each row's time_start-time_end span
    to extraction and sampling: one cache entry per row, every clip inside its window
    (by timestamp and by the pixels), and elo-extract caches exactly those entries."""
    root = tmp_path / "k"
    _untrimmed(root / "full" / "abc.mp4")
    _untrimmed(root / "full" / "def.mp4")
    (root / "train.csv").write_text(
        "label,youtube_id,time_start,time_end,split\n"
        "x,abc,1,3,train\ny,abc,5,7,train\nx,def,4,6,validate\n"
    )
    index = scan(root)
    assert [r.window for r in index.records] == [(1.0, 3.0), (5.0, 7.0), (4.0, 6.0)]
    over = [
        "data.clip.size=32",
        "data.clip.frames=8",
        "data.clip.per_video=2",
        "data.clip.sampling=uniform",
    ]
    cfg = load_config("demo", over)
    cache = tmp_path / "cache"
    argv = [str(root), "--cache", str(cache), "--workers", "0", "--modalities", "rgb"]
    assert extract_main([*argv, "--no-progress", *over]) == 0
    entries = sorted(p.parent for p in cache.glob("*/*/clips.json"))
    assert len(entries) == 3  # one per row, not one per file
    ds = open_dataset(cfg, root, split="train", cache_dir=cache, modalities=("rgb",), extract=False)
    assert len(ds) == 4 and sorted(ds.targets().tolist()) == [0, 0, 1, 1]
    ids = [ds[i]["meta"]["clip_id"] for i in range(len(ds))]
    assert len(set(ids)) == 4 and "full/abc@1-3#0" in ids
    for rec, _d, _k, start in ds.items:
        t0, t1 = rec.window
        assert t0 - 1 / 16 <= start and start + 8 / 8.0 <= t1 + 1 / 16, (rec.window, start)
        # brightness of the clip's frames -> source frame indices -> seconds
        raw = ds._row(_d, "rgb", _k)
        level = np.asarray(raw, dtype=np.float64).reshape(3, 8, -1).mean(axis=(0, 2))
        level = level * 255 if level.max() <= 1.5 else level
        seconds = (level - 20) / 3 / 8.0
        assert (seconds >= t0 - 0.2).all() and (seconds <= t1 + 0.2).all(), (rec.window, seconds)


def test_kinetics_window_past_the_end_of_the_file_is_skipped_with_the_reason(
    tmp_path: Path,
) -> None:
    root = tmp_path / "k"
    _untrimmed(root / "abc.mp4", seconds=4)
    _untrimmed(root / "def.mp4", seconds=4)
    (root / "train.csv").write_text(
        "label,youtube_id,time_start,time_end,split\nx,abc,20,30,train\ny,def,0,3,train\n"
    )
    cfg = load_config("demo", ["data.clip.size=32", "data.clip.frames=8"])
    ds = open_dataset(cfg, root, split="train", cache_dir=tmp_path / "c", modalities=("rgb",))
    assert len(ds) == 1 and ds.skipped[0][0] == "abc.mp4"
    assert "no video frames in its window 20-30 s" in ds.skipped[0][1]


@pytest.fixture(scope="module")
def path_label(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """mmaction2-style lists: annotations/<name>_{train,val}_split_N_videos.txt with
    headerless 'path label' lines, labels from 0; classInd.txt names the classes."""
    root = tmp_path_factory.mktemp("lists") / "videos"
    (root / "annotations").mkdir(parents=True)
    vids = [(f"clips/v{i}.mp4", i % 2) for i in range(6)]
    for i, (rel, _) in enumerate(vids):
        _video(root / rel, seed=i)
    for fold in (1, 2):
        test = {fold - 1, fold + 1}
        for split in ("train", "val"):
            lines = [
                f"{r} {y}\n" for i, (r, y) in enumerate(vids) if (i in test) == (split == "val")
            ]
            (root / "annotations" / f"ds_{split}_split_{fold}_videos.txt").write_text(
                "".join(lines)
            )
    (root / "classInd.txt").write_text("1 even\n2 odd\n")
    return root


def test_path_label_lists(path_label: Path, tmp_path: Path) -> None:
    index = scan(path_label)
    assert index.layout == "lists" and index.fold_numbers == [1, 2]
    assert index.class_names == ["even", "odd"]
    assert _rels(select_split(index, "test", fold=2)) == {"clips/v1.mp4", "clips/v3.mp4"}
    assert len(select_split(index, "train", fold=1)) == 4
    assert {r.label for r in index.records if r.rel == "clips/v3.mp4"} == {1}
    ds = open_dataset(_cfg(1), path_label, split="test", cache_dir=tmp_path, modalities=("rgb",))
    assert sorted(ds.targets().tolist()) == [0, 0]  # v0 and v2


def test_a_single_list_file_and_its_errors(path_label: Path, tmp_path: Path) -> None:
    lst = tmp_path / "all.txt"  # no split in the name: one fold, hash split
    lst.write_text("".join(f"{path_label}/clips/v{i}.mp4 {i % 2}\n" for i in range(6)))
    index = scan(lst)
    assert index.fold_numbers == [1] and len(index.records) == 6
    assert len(select_split(index, "train")) + len(select_split(index, "test")) == 6
    with pytest.raises(DataError, match=r"no fold 2 in this lists layout \(folds: 1\)"):
        select_split(index, "train", fold=2)
    bad = tmp_path / "bad.txt"
    bad.write_text("a.mp4 walking\n")
    with pytest.raises(DataError, match="bad.txt: a list file needs 'path label' lines"):
        scan(bad)


def test_frame_baselines_pretrain_on_the_train_split_of_the_fold(ucf101: Path) -> None:
    from elo.baselines.frames import load_frames

    for fold in (1, 2):
        frames = load_frames(ucf101, size=16, frames_per_video=1, split="train", fold=fold)
        want = {f"{n}/v_{n}_g{g:02d}_c01.avi" for n in CLASSES for g in (1, 2, 3) if g != fold}
        assert set(frames.sources) == want  # never a video of fold's test list
