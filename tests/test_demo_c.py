"""The style-c demo generator (elo/data/demo_c.py): layout read by the project's loaders,
Zipf train pool and balanced test split, determinism (pool or not), real all-intra
H.264 + AAC files, the audio modes, motion as specified per class, and no class in the
appearance (one frame, the time-mean image)."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from elo.data.demo_c import render_frames, sound_parameters
from elo.data.demo_c_scene import draw_scene, motion, radius_range
from elo.data.demo_c_spec import CLASSES, ClipJob, DemoCSpec, plan_clips, zipf_sizes
from elo.data.demo_data import make_demo
from elo.errors import DataError


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo(tmp_path_factory.mktemp("c") / "c", clips=24, seed=3, workers=0, style="c")


_COLUMNS = ("path", "label", "class", "split", "shape", "texture", "polarity", "anomaly")


def _rows(root: Path) -> list[dict[str, str]]:
    with open(root / "labels.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _decode(path: Path) -> tuple[np.ndarray, np.ndarray | None, dict[str, object]]:
    import av

    with av.open(str(path)) as box:
        v = box.streams.video[0]
        info: dict[str, object] = {"codec": v.codec_context.name, "pix_fmt": v.format.name}
        frames = [f for f in box.decode(video=0)]
        info["intra"] = all(f.key_frame for f in frames)
        rgb = np.stack([f.to_ndarray(format="rgb24") for f in frames])
    with av.open(str(path)) as box:
        if not box.streams.audio:
            return rgb, None, info
        a = box.streams.audio[0]
        info.update(audio=a.codec_context.name, rate=a.rate, channels=a.channels)
        sound = np.concatenate([f.to_ndarray() for f in box.decode(audio=0)], axis=1)
    return rgb, sound, info


def test_layout_lists_csv_and_scan(demo: Path) -> None:
    from elo.data.layouts import scan, select_split

    rows = _rows(demo)
    assert len(rows) == 24
    assert list(rows[0]) == [*_COLUMNS, "sound"]
    for r in rows:
        assert r["path"].split("/")[0] == r["class"] == CLASSES[int(r["label"])]
        assert r["path"].startswith(f"{r['class']}/{r['class']}_") and (demo / r["path"]).is_file()
        assert r["sound"] == r["label"]  # audio "tied" by default
    assert (demo / "classInd.txt").read_text().split()[1::2] == list(CLASSES)
    for split in ("train", "test"):
        lines = [ln.split() for ln in (demo / f"{split}list.txt").read_text().splitlines()]
        want = {(r["path"], str(int(r["label"]) + 1)) for r in rows if r["split"] == split}
        assert {(p, lab) for p, lab in lines} == want
    meta = json.loads((demo / "demo.json").read_text())
    assert meta["style"] == "c" and meta["audio"] == "tied" and meta["clips"] == 24
    index = scan(demo)
    assert index.class_names == list(CLASSES) and len(index.records) == 24
    assert {"shape", "anomaly", "sound"} <= set(index.label_names)
    test = select_split(index, "test")
    assert sorted(r.label for r in test) == list(range(8))  # balanced, one per class
    assert len(select_split(index, "train")) == 16


def test_the_project_loader_reads_video_flow_and_audio(demo: Path, tmp_path: Path) -> None:
    from elo.config import load_config
    from elo.data.datasets import open_dataset

    cfg = load_config("demo", ["data.clip.size=64"])
    ds = open_dataset(cfg, demo, split="test", cache_dir=tmp_path)
    assert ds.num_classes == 8 and ds.class_names == list(CLASSES) and len(ds) == 8
    item = ds[0]
    assert item["rgb"].shape == (3, 8, 64, 64) and item["flow"].shape == (2, 7, 64, 64)
    assert item["present"]["audio"] and item["audio"].std() > 0.1


def test_zipf_train_pool_and_balanced_test_split() -> None:
    rng = np.random.default_rng(0)
    c = zipf_sizes(1000, 8, 1.0, rng)
    assert c.sum() == 1000 and (c > 0).all()
    s = np.sort(c)[::-1]
    np.testing.assert_allclose(s / s[0], 1 / np.arange(1, 9), atol=0.01)
    assert (zipf_sizes(80, 8, 0.0, rng) == 10).all()
    jobs = plan_clips(DemoCSpec(clips=400, seed=1))
    test = np.bincount([j.label for j in jobs if j.split == "test"], minlength=8)
    train = np.bincount([j.label for j in jobs if j.split == "train"], minlength=8)
    assert (test == 12).all() and train.sum() == 304
    ranked = np.sort(train)[::-1]
    np.testing.assert_allclose(ranked / ranked[0], 1 / np.arange(1, 9), atol=0.02)
    largest = {
        int(
            np.argmax(
                np.bincount(
                    [
                        j.label
                        for j in plan_clips(DemoCSpec(clips=80, seed=k))
                        if j.split == "train"
                    ],
                    minlength=8,
                )
            )
        )
        for k in range(6)
    }
    assert len(largest) > 1  # the rank order over classes is shuffled by the seed
    assert len({j.rel for j in jobs}) == 400


def test_files_are_all_intra_h264_with_aac_mono(demo: Path) -> None:
    rel = _rows(demo)[0]["path"]
    rgb, sound, info = _decode(demo / rel)
    assert rgb.shape == (16, 64, 64, 3) and rgb.std() > 5
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p" and info["intra"]
    assert info["audio"] == "aac" and info["rate"] == 16000 and info["channels"] == 1
    assert sound is not None and sound.shape[0] == 1 and sound.shape[1] >= 32000
    assert 0.05 < np.abs(sound).max() < 1.0


def test_deterministic_for_a_seed_with_or_without_a_pool(demo: Path, tmp_path: Path) -> None:
    again = make_demo(tmp_path / "again", clips=24, seed=3, workers=2, style="c")
    assert (again / "labels.csv").read_bytes() == (demo / "labels.csv").read_bytes()
    for r in _rows(demo)[:4]:
        assert (again / r["path"]).read_bytes() == (demo / r["path"]).read_bytes()
    other = make_demo(tmp_path / "other", clips=24, seed=4, workers=0, style="c")
    rel = _rows(demo)[0]["path"]
    if (other / rel).exists():
        assert not np.array_equal(_decode(other / rel)[0], _decode(demo / rel)[0])
    assert (other / "labels.csv").read_bytes() != (demo / "labels.csv").read_bytes()


def test_audio_modes(demo: Path, tmp_path: Path) -> None:
    """absent: no audio stream and no sound column; independent: the same pixels as
    tied, the sound's class drawn apart from the label (about 1 in 8 agree)."""
    absent = make_demo(tmp_path / "n", clips=16, seed=3, workers=0, style="c", audio="absent")
    rows = _rows(absent)
    assert list(rows[0]) == list(_COLUMNS)
    rgb, sound, _ = _decode(absent / rows[0]["path"])
    assert sound is None and rgb.shape == (16, 64, 64, 3)
    free = make_demo(tmp_path / "i", clips=24, seed=3, workers=0, style="c", audio="independent")
    rel = _rows(demo)[0]["path"]
    np.testing.assert_array_equal(_decode(free / rel)[0], _decode(demo / rel)[0])
    spec = DemoCSpec(clips=400, seed=0, audio="independent")
    same = [draw_scene(spec, j).sound == j.label for j in plan_clips(spec)]
    assert 0.05 < np.mean(same) < 0.25
    rate, band = sound_parameters(spec, 3, test=True)
    shift = spec.test_sound_shift
    assert rate == pytest.approx(spec.click_rate * spec.click_ratio**3 * shift)
    assert band == pytest.approx(spec.band_hz * spec.band_ratio**3 * shift)
    with pytest.raises(DataError, match="demo audio"):
        make_demo(tmp_path / "x", clips=16, style="c", audio="loud", workers=0)


def test_cli_style_and_audio_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from elo import cli

    out = tmp_path / "d"
    argv = ["demo", "--out", str(out), "--clips", "16", "--workers", "0", "--style", "c"]
    assert cli.data_main([*argv, "--audio", "absent"]) == 0
    assert json.loads((out / "demo.json").read_text())["audio"] == "absent"
    assert "sound" not in _rows(out)[0]
    capsys.readouterr()
    assert cli.data_main(["demo", "--out", str(tmp_path / "a"), "--audio", "tied"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--audio is for --style c only" in err and len(err.splitlines()) == 1
    with pytest.raises(DataError, match="demo style"):
        make_demo(tmp_path / "z", clips=16, style="z", workers=0)
    with pytest.raises(DataError, match="unknown demo option"):
        make_demo(tmp_path / "u", clips=16, style="c", digits=3, workers=0)


def _centroids(mask: np.ndarray) -> np.ndarray:
    """Circular (wrap-around) centroid (x, y) of each frame's mask (T, n, n)."""
    n = mask.shape[-1]
    phase = np.exp(2j * np.pi * (np.arange(n) + 0.5) / n)
    x = (mask.sum(1) * phase).sum(1)
    y = (mask.sum(2) * phase).sum(1)
    return np.stack([np.angle(x), np.angle(y)], 1) * n / (2 * np.pi)


def _min_step(name: str, spec: DemoCSpec) -> float:
    """The smallest per-frame displacement of the object the spec allows (px)."""
    if name.startswith("drift"):
        return spec.drift_speed[0]
    if name == "zigzag":
        return float(np.hypot(spec.zigzag_advance[0], spec.zigzag_lateral[0]))
    if name == "circle":  # the chord of the slowest, tightest circle
        v, r = spec.circle_speed[0], spec.circle_radius[0]
        return float(2 * r * np.sin(v / (2 * r)))
    assert name == "shake"  # back and forth: two reaches, the axis turning a little
    return float(2 * spec.shake_amplitude[0] * np.cos(spec.shake_turn / 2))


def test_each_class_moves_as_its_parameters_say() -> None:
    """Rendered on a flat background with a still camera, the object's centroid moves
    at least the spec's minimum step every frame (>= 2.5 px at 64 px for all but the
    looming class), and the looming object grows by >= 10 % in area on every frame but
    its restarts (radius growth >= 1.2 px at a radius <= 14.4 px: >= 17 %)."""
    spec = DemoCSpec(camera_drift=0.0, camera_jitter=0.0, p_absent=0, p_occluded=0, p_still=0)
    flat = {"background_level": np.array([0.5, 0.0, 0.0]), "tint": np.zeros(3)}
    for label, name in enumerate(CLASSES):
        for i in range(6):
            scene = draw_scene(spec, ClipJob(100 * label + i, label, "train", "x.mp4"))
            frames = render_frames(spec, dataclasses.replace(scene, **flat)).astype(int)
            mask = (np.abs(frames - 128) > 4).any(-1)
            if name == "loom":
                area = mask.sum((1, 2)).astype(float)
                grows = np.diff(scene.radius) > 0
                assert grows.mean() > 0.6 and (area[1:][grows] / area[:-1][grows]).min() > 1.1
                continue
            d = np.diff(_centroids(mask), axis=0)
            step = np.hypot(*((d + 32) % 64 - 32).T)
            assert step.min() >= _min_step(name, spec) - 0.5 >= 2.5, (name, step.min())


def test_motion_does_not_depend_on_where_it_starts() -> None:
    """The per-frame radius of every class (looming included) spans the same range."""
    spec = DemoCSpec()
    lo, hi = radius_range(spec)
    rng = np.random.default_rng(0)
    for label in range(8):
        radii = np.concatenate([motion(label, spec, rng)[1] for _ in range(200)])
        assert lo <= radii.min() < lo + 0.5 and hi - 0.5 < radii.max() <= hi
        assert abs(np.median(radii) - (lo + hi) / 2) < 0.6


def _pooled(image: np.ndarray) -> np.ndarray:
    n = image.shape[0] // 8
    return image.reshape(8, n, 8, n, 3).mean((1, 3)).ravel()


def _appearance_probe(seed: int, clips: int = 240) -> tuple[float, float]:
    """5-fold CV balanced accuracy of a logistic regression on the middle frame and on
    the time-mean image, pooled to 8x8 RGB (rendered frames, no codec)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    spec = DemoCSpec(clips=clips, seed=seed, zipf=0.0)
    jobs = plan_clips(spec)
    frames = [render_frames(spec, draw_scene(spec, j)).astype(np.float64) for j in jobs]
    y = np.array([j.label for j in jobs])
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    scores = []
    for feats in ([_pooled(f[len(f) // 2]) for f in frames], [_pooled(f.mean(0)) for f in frames]):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
        acc = cross_val_score(model, np.stack(feats), y, cv=folds, scoring="balanced_accuracy")
        scores.append(float(acc.mean()))
    return scores[0], scores[1]


@pytest.mark.slow
def test_appearance_does_not_tell_the_class() -> None:
    """A linear probe on one frame or on the time-mean image stays near chance (0.125).
    Measured on 240 clips (30 a class), seeds 0-9: middle frame 0.088-0.133 (mean 0.109,
    sd 0.015), time-mean 0.088-0.150 (mean 0.120, sd 0.019); the bound 0.21 is above the
    largest by > 3 sd (benchmarks/check_demo_c.py: motion statistics reach ~0.9)."""
    frame, mean = _appearance_probe(seed=0)
    assert frame < 0.21 and mean < 0.21, (frame, mean)
