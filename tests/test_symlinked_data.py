"""Datasets assembled from symlinks, on real encoded videos: a UCF101 layout whose class
folders are symlinks into another folder trains (``elo-train``) and evaluates
(``elo-eval``); a symlink loop inside it is skipped with its reason; a dataset whose
links lead nowhere says what it saw (elo/data/discover.py)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from _media import moving_square, write_video
from _scripts import main_of

from elo.data.discover import walk_media
from elo.data.extract import find_videos
from elo.data.layouts import scan, select_split
from elo.errors import DataError

CLASSES = {"Left": (-3, 0), "Right": (3, 0)}
#: a small clip geometry for elo-train / elo-eval on 32-px videos
TINY = [
    "data.clip.size=32",
    "data.clip.frames=4",
    "data.clip.extra_frames=0",
    "data.clip.extra_pixels=0",
    "objective.modalities=[rgb]",
    "train.batch_size=4",
]


@pytest.fixture(scope="module")
def linked_ucf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``store/<class>/`` holds the videos; ``UCF-101/<class>`` are symlinks to them
    (as datasets on shared storage are assembled), with the official lists beside
    them. Inside the store, ``Left/again -> ..`` and ``Right/self -> .`` are loops."""
    base = tmp_path_factory.mktemp("linked")
    store, root = base / "store", base / "UCF-101"
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    train, test = [], []
    for c, (name, speed) in enumerate(CLASSES.items()):
        for g in range(1, 5):
            rel = f"{name}/v_{name}_g{g:02d}_c01.mp4"
            fr = moving_square(12, 32, 32, speed=speed, side=8, seed=10 * c + g)
            write_video(store / rel, fr, fps=8.0)
            (test if g == 4 else train).append(rel)
        os.symlink(store / name, root / name, target_is_directory=True)
    os.symlink("..", store / "Left" / "again")
    os.symlink(".", store / "Right" / "self")
    (lists / "classInd.txt").write_text("1 Left\n2 Right\n")
    (lists / "trainlist01.txt").write_text("".join(f"{r} 1\n" for r in train))
    (lists / "testlist01.txt").write_text("".join(f"{r}\n" for r in test))
    return root


def test_symlinked_class_folders_are_followed_and_loops_skipped(
    linked_ucf: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="elo.data.discover"):
        found = walk_media(linked_ucf, {".mp4"})
    warned = [r.getMessage() for r in caplog.records if "symlink" in r.getMessage()]
    rels = {p.relative_to(linked_ucf).as_posix() for p in found.files}
    assert rels == {f"{n}/v_{n}_g{g:02d}_c01.mp4" for n in CLASSES for g in range(1, 5)}
    assert found.files == find_videos(linked_ucf)  # paths through the links, not resolved
    assert sorted(link.name for link, _ in found.links) == ["Left", "Right"]
    store = linked_ucf.parent / "store"
    loops = {link.relative_to(linked_ucf).as_posix(): t for link, t in found.loops}
    assert loops == {"Left/again": store.resolve(), "Right/self": (store / "Right").resolve()}
    assert len(warned) == 2 and all("(a loop)" in m for m in warned), warned
    assert "2 symlink loops skipped" in found.summary()

    index = scan(linked_ucf)
    assert index.layout == "ucf101" and index.class_names == ["Left", "Right"]
    test = select_split(index, "test", fold=1)
    assert sorted((r.rel, r.label) for r in test) == [
        ("Left/v_Left_g04_c01.mp4", 0),
        ("Right/v_Right_g04_c01.mp4", 1),
    ]
    assert len(select_split(index, "train", fold=1)) == 6


def test_symlinked_ucf101_trains_and_evaluates(linked_ucf: Path, tmp_path: Path) -> None:
    """The whole path a user takes: ``elo-train`` a few steps on the symlinked layout,
    then ``elo-eval`` of its exported encoder on the official test list."""
    out = tmp_path / "model"
    cache = ["data.cache=" + str(tmp_path / "cache")]
    args = ["--data", str(linked_ucf), "--steps", "2", "--out", str(out), "--no-progress"]
    assert main_of("train")([*args, *TINY, *cache]) == 0
    log = [json.loads(ln) for ln in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2]
    res_dir = tmp_path / "eval"
    args = ["--encoder", str(out), "--data", str(linked_ucf), "--out", str(res_dir)]
    assert main_of("eval")([*args, "--protocol", "knn", "--k", "1", *TINY[:4], *cache]) == 0
    res = json.loads((res_dir / "results.json").read_text())
    assert (res["num_train"], res["num_test"]) == (6, 2)
    assert res["class_names"] == ["Left", "Right"]


def test_links_to_missing_storage_name_what_was_seen(tmp_path: Path) -> None:
    """Class folders linked to storage that is not mounted: the error names the 3
    folders, 0 videos and where the links lead, not just "no videos"."""
    root = tmp_path / "ucf"
    root.mkdir()
    for name in ("A", "B", "C"):
        os.symlink(f"/nonexistent-mount/ucf/{name}", root / name)
    (root / "notes.txt").write_text("readme")
    with pytest.raises(DataError) as err:
        scan(root)
    msg = str(err.value)
    assert msg.startswith(f"{root}: no videos found (0 folders, 0 videos, 1 other files;")
    assert "3 are symlinks to missing targets under /nonexistent-mount/ucf" in msg

    linked = tmp_path / "linked"
    linked.mkdir()
    for name in ("A", "B"):
        (tmp_path / "empty" / name).mkdir(parents=True)
        os.symlink(tmp_path / "empty" / name, linked / name)
    with pytest.raises(DataError, match=r"2 folders, 0 videos; 2 are symlinked folders into "):
        scan(linked)


def test_elo_extract_through_a_symlinked_folder(linked_ucf: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    args = [str(linked_ucf), "--cache", str(cache), "--workers", "0", "--no-progress"]
    assert main_of("extract")([*args, "--modalities", "rgb", *TINY[:4]]) == 0
    report = [json.loads(ln) for ln in (cache / "extract_report.jsonl").read_text().splitlines()]
    assert report[-1]["kind"] == "summary" and report[-1]["ok"] == 8
