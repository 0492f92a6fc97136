"""The demo dataset: layout, labels, Zipf train pool, balanced test split, nuisance
shift between splits, determinism, and the CLI."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from elo.config import load_config
from elo.data.datasets import open_dataset
from elo.data.demo_data import ACTIONS, DemoSpec, make_demo, plan, zipf_counts
from elo.errors import DataError


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo(tmp_path_factory.mktemp("demo") / "demo", clips=24, seed=5, workers=0)


def _rows(root: Path) -> list[dict[str, str]]:
    with open(root / "labels.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_layout_lists_and_csv(demo: Path) -> None:
    rows = _rows(demo)
    assert len(rows) == 24
    assert set(rows[0]) == {
        "path",
        "label",
        "class",
        "identity",
        "split",
        "motion_cue",
        "sound_cue",
    }
    for r in rows:
        assert (demo / r["path"]).stat().st_size > 0
        assert r["path"].split("/")[0] == r["class"] == ACTIONS[int(r["label"])]
        assert 0 <= int(r["identity"]) <= 9
    classes = (demo / "classInd.txt").read_text().split()
    assert classes[1::2] == list(ACTIONS)
    test = (demo / "testlist.txt").read_text().splitlines()
    train = (demo / "trainlist.txt").read_text().splitlines()
    assert len(test) + len(train) == 24
    assert {ln.split()[0] for ln in test} == {r["path"] for r in rows if r["split"] == "test"}
    # the test split is balanced, at least one clip per class even for tiny sets
    counts = np.bincount([int(r["label"]) for r in rows if r["split"] == "test"], minlength=8)
    assert counts.tolist() == [1] * 8


def test_files_decode_with_video_and_audio(demo: Path, tmp_path: Path) -> None:
    cfg = load_config("demo", ["data.clip.size=64"])  # the demo's native size
    ds = open_dataset(cfg, demo, split="train", cache_dir=tmp_path)
    assert ds.num_classes == 8 and "identity" in ds.label_names
    item = ds[0]
    s = cfg["data"]["clip"]["size"]
    assert item["rgb"].shape == (3, 8, s, s) and item["flow"].shape == (2, 7, s, s)
    assert item["present"]["audio"] and item["audio"].std() > 0.1


def test_zipf_counts_follow_the_law() -> None:
    rng = np.random.default_rng(0)
    c = zipf_counts(1000, 8, 1.0, rng)
    assert c.sum() == 1000 and (c > 0).all()
    s = np.sort(c)[::-1]
    np.testing.assert_allclose(s / s[0], 1 / np.arange(1, 9), atol=0.01)
    flat = zipf_counts(80, 8, 0.0, rng)
    assert (flat == 10).all()
    steep = np.sort(zipf_counts(1000, 8, 2.0, rng))[::-1]
    assert steep[0] / steep[-1] > 40


def test_plan_balanced_test_zipf_train_disjoint_digits() -> None:
    from sklearn.datasets import load_digits

    targets = load_digits().target
    p = plan(DemoSpec(clips=400, seed=1, zipf=1.5), targets)
    test = np.bincount([q.label for q in p if q.split == "test"], minlength=8)
    train = np.sort(np.bincount([q.label for q in p if q.split == "train"], minlength=8))[::-1]
    assert (test == 100 // 8).all() and test.sum() == 96
    assert train.sum() == 304 and train[0] > 8 * train[-1]
    tr = {q.digit for q in p if q.split == "train"}
    te = {q.digit for q in p if q.split == "test"}
    assert not tr & te  # other digit instances in the test split
    assert all(q.identity == targets[q.digit] for q in p)


def test_deterministic_for_a_seed(demo: Path, tmp_path: Path) -> None:
    again = make_demo(tmp_path / "again", clips=24, seed=5, workers=0)
    assert (again / "labels.csv").read_bytes() == (demo / "labels.csv").read_bytes()
    rel = _rows(demo)[0]["path"]
    assert (again / rel).read_bytes() == (demo / rel).read_bytes()
    other = make_demo(tmp_path / "other", clips=24, seed=6, workers=0)
    assert (other / "labels.csv").read_bytes() != (demo / "labels.csv").read_bytes()


def test_cli_and_bad_options(tmp_path: Path) -> None:
    from elo import cli

    assert (
        cli.data_main(["demo", "--out", str(tmp_path / "d"), "--clips", "16", "--workers", "0"])
        == 0
    )
    assert len(_rows(tmp_path / "d")) == 16
    with pytest.raises(DataError, match="unknown demo option"):
        make_demo(tmp_path / "e", clips=16, colour=3)
    assert cli.data_main(["demo", "--out", str(tmp_path / "f"), "--clips", "3"]) == 2


def test_objects_move_at_least_two_pixels_per_frame_at_the_encoder_input() -> None:
    """The translating classes move >= 5 px/frame in the 64 px video (style a), i.e.
    >= 3.1 px/frame in the 40 px frames the demo experiment caches and crops to 32 px;
    the object covers ~45 % of the frame side."""
    from elo.data.demo_render import _trajectory

    rng = np.random.default_rng(0)
    t = np.arange(16, dtype=np.float64)
    for action in ("right", "left", "up", "down", "orbit"):
        for _ in range(20):
            x, y, _, _ = _trajectory(action, t, rng, True, 64, "a")
            step = np.hypot(np.diff(x), np.diff(y))
            assert step.min() * 40 / 64 >= 2.0, (action, step.min())
        x, y, _, _ = _trajectory(action, t, rng, False, 64, "a")  # motion dropout
        assert np.ptp(x) == 0 and np.ptp(y) == 0
    assert DemoSpec().object_fraction * 32 >= 14  # the object spans >= 14 px at 32 px


def test_style_b_is_another_generator(tmp_path: Path) -> None:
    """Style b: Hershey glyphs (identity = glyph, 15 of them) over striped textures,
    three distractors; the same 8 actions and layout, decodable like style a."""
    root = make_demo(tmp_path / "b", clips=16, seed=7, workers=0, style="b", distractors=3)
    rows = _rows(root)
    assert {r["class"] for r in rows} <= set(ACTIONS)
    assert all(0 <= int(r["identity"]) < 15 for r in rows)
    a = make_demo(tmp_path / "a", clips=16, seed=7, workers=0)
    rel = rows[0]["path"]
    assert (root / rel).read_bytes() != (a / rel).read_bytes()
    with pytest.raises(DataError, match="demo style"):
        make_demo(tmp_path / "c", clips=16, style="z", workers=0)


def test_shortcut_probe_features_see_appearance_or_motion_only() -> None:
    """The demo table's parameter-free rows: the time-mean image cannot tell a clip
    from its time reversal (appearance only), the motion statistics can (the flow
    flips sign), and the single frame is one frame of the clip."""
    import torch

    from elo.evaluation.pixel_stats import build_probe_encoder

    g = torch.Generator().manual_seed(0)
    x = torch.zeros(2, 3, 8, 32, 32)
    for t in range(8):  # a bright square moving right by 2 px per frame, on noise
        x[:, :, t, 10:18, 4 + 2 * t : 12 + 2 * t] = 1.0
    x += 0.01 * torch.randn(x.shape, generator=g)
    rev = x.flip(2)
    emb = {k: build_probe_encoder(kind=k) for k in ("frame", "timemean", "motion")}
    mean_fwd, mean_rev = emb["timemean"](x).embedding, emb["timemean"](rev).embedding
    assert torch.allclose(mean_fwd, mean_rev, atol=1e-5)
    mot_fwd, mot_rev = emb["motion"](x).embedding, emb["motion"](rev).embedding
    assert mot_fwd.shape == (2, 48)
    assert (mot_fwd - mot_rev).abs().max() > 10 * (mean_fwd - mean_rev).abs().max() + 1e-3
    frame = emb["frame"](x).embedding
    assert frame.shape == (2, 192)
    assert torch.allclose(frame, torch.nn.functional.adaptive_avg_pool2d(x[:, :, 4], 8).flatten(1))
