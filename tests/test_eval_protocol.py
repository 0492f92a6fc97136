"""Evaluation as the field reports it: scores averaged over the clips and crops of each
test video, spatial crops, and ``elo-eval --fold all --clips N --crops M`` over the
three official folds of a UCF101-layout folder of real videos."""

from __future__ import annotations

import json
import statistics

import numpy as np
import pytest
import torch
from _media import moving_square, write_video

from elo.errors import DataError
from elo.evaluation.evaluate import evaluate, spatial_crops
from elo.evaluation.pixel_stats import build_pixel_stats_encoder
from elo.evaluation.probe import average_over_groups, knn_probe, result_from_scores

DIRECTIONS = {"Right": (3, 0), "Left": (-3, 0), "Down": (0, 3), "Up": (0, -3)}


def test_scores_are_averaged_per_video_before_the_argmax() -> None:
    # video a (class 0): clips vote 0, 0, 1 -> mean favours 0; video b (class 1): 1, 0, 1
    scores = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.3, 0.7], [0.55, 0.45], [0.1, 0.9]])
    y = np.array([0, 0, 0, 1, 1, 1])
    groups = ["a", "a", "a", "b", "b", "b"]
    per_clip = result_from_scores(scores, np.arange(2), y, 2)
    per_video = result_from_scores(scores, np.arange(2), y, 2, groups)
    assert per_clip.top1 == pytest.approx(4 / 6)
    assert per_video.top1 == 1.0 and per_video.predictions.tolist() == [0, 1]
    assert per_video.extra == {"test_videos": 2, "test_views": 6}
    assert per_video.confusion.tolist() == [[1, 0], [0, 1]]
    mean, labels, names = average_over_groups(scores, y, groups)
    np.testing.assert_allclose(mean, [[1.7 / 3, 1.3 / 3], [0.95 / 3, 2.05 / 3]])
    assert labels.tolist() == [0, 1] and names == ["a", "b"]
    with pytest.raises(DataError, match="test video 'a': its clips carry different labels"):
        average_over_groups(scores, np.array([0, 1, 0, 1, 1, 1]), groups)


def test_knn_votes_are_normalized_per_clip_then_averaged() -> None:
    train_x = np.array([[1.0, 0.0], [0.0, 1.0]])
    train_y = np.array([0, 1])
    # video v (class 0): two clips near class 0, one exactly on class 1
    test_x = np.array([[1.0, 0.3], [1.0, 0.2], [0.0, 1.0]])
    test_y = np.array([0, 0, 0])
    res = knn_probe(train_x, train_y, test_x, test_y, k=2, groups=["v", "v", "v"])
    assert res.top1 == 1.0 and res.extra["test_videos"] == 1
    assert knn_probe(train_x, train_y, test_x, test_y, k=2).top1 == pytest.approx(2 / 3)


def test_spatial_crops_span_the_width_centred_vertically() -> None:
    x = torch.arange(2 * 3 * 2 * 8 * 10, dtype=torch.float32).reshape(2, 3, 2, 8, 10)
    crops = spatial_crops(x, 3, 6)  # lefts 0, 2, 4; top (8 - 6) // 2 = 1
    assert [tuple(c.shape) for c in crops] == [(2, 3, 2, 6, 6)] * 3
    for c, left in zip(crops, (0, 2, 4), strict=True):
        assert torch.equal(c, x[..., 1:7, left : left + 6])
    (centre,) = spatial_crops(x, 1, 6)
    assert torch.equal(centre, x[..., 1:7, 2:8])
    assert spatial_crops(x, 1, None)[0] is x


def _clip(speed: tuple[int, int], seed: int) -> torch.Tensor:
    fr = moving_square(8, 32, 32, speed=speed, side=8, seed=seed)  # T,H,W,3
    return torch.from_numpy(fr).permute(3, 0, 1, 2).float() / 255.0  # 3,T,H,W


def _batch(clips: list[torch.Tensor], labels: list[int], ids: list[str]) -> dict:
    return {
        "rgb": torch.stack(clips),
        "present": {"rgb": torch.ones(len(clips), dtype=torch.bool)},
        "meta": {"clip_id": ids, "label": torch.tensor(labels), "labels": {}},
    }


@pytest.mark.parametrize("protocol", ["linear", "knn", "finetune"])
def test_evaluate_averages_over_the_clips_of_a_video(protocol: str) -> None:
    """Each test video has two clips moving its way and one moving the opposite way:
    scored per clip a third is wrong, averaged per video (as the field tests) none is.
    The encoder is the parameter-free pixel-statistics reference, so this is exact."""
    dirs = list(DIRECTIONS.values())
    opposite = {0: 1, 1: 0, 2: 3, 3: 2}
    train = [
        _batch([_clip(d, 10 * c + i) for i in range(6)], [c] * 6, [f"t{c}_{i}#0" for i in range(6)])
        for c, d in enumerate(dirs)
    ]
    clips, labels, video_ids, clip_ids = [], [], [], []
    for c in range(4):
        for v in range(2):
            for k, d in enumerate([dirs[c], dirs[c], dirs[opposite[c]]]):
                clips.append(_clip(d, 500 + 10 * c + 3 * v + k))
                labels.append(c)
                video_ids.append(f"c{c}v{v}#{k}")  # 3 clips of one video
                clip_ids.append(f"c{c}v{v}k{k}#0")  # every clip its own video
    enc = build_pixel_stats_encoder(grid=1)
    kw = {"protocol": protocol, "num_classes": 4, "k": 5, "epochs": 20, "lr": 0.2}
    per_video = evaluate(enc, train, [_batch(clips, labels, video_ids)], **kw)
    per_clip = evaluate(enc, train, [_batch(clips, labels, clip_ids)], **kw)
    assert per_video.extra["test_videos"] == 8 and per_video.extra["test_views"] == 24
    assert per_clip.extra["test_videos"] == 24
    assert per_clip.top1 == pytest.approx(2 / 3)
    assert per_video.top1 == 1.0


@pytest.fixture(scope="module")
def ucf3(tmp_path_factory: pytest.TempPathFactory):
    """A UCF101-layout folder of real MP4s with three folds (fold N tests group N):
    class = direction of motion; plus an exported pixel-statistics encoder."""
    from elo.evaluation.pixel_stats import PIXEL_STATS_BUILDER
    from elo.train.export import save_encoder

    root = tmp_path_factory.mktemp("ucf3") / "UCF-101"
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    names = list(DIRECTIONS)
    for c, (name, sp) in enumerate(DIRECTIONS.items()):
        for g in (1, 2, 3):
            for i in (1, 2):
                fr = moving_square(24, 40, 40, speed=sp, side=8, seed=100 * c + 10 * g + i)
                write_video(root / name / f"v_{name}_g{g:02d}_c{i:02d}.mp4", fr, fps=8.0)
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {n}\n" for i, n in enumerate(names)))
    for fold in (1, 2, 3):
        vids = [(n, g, i) for n in names for g in (1, 2, 3) for i in (1, 2)]
        train = [f"{n}/v_{n}_g{g:02d}_c{i:02d}.mp4 1\n" for n, g, i in vids if g != fold]
        test = [f"{n}/v_{n}_g{g:02d}_c{i:02d}.mp4\n" for n, g, i in vids if g == fold]
        (lists / f"trainlist0{fold}.txt").write_text("".join(train))
        (lists / f"testlist0{fold}.txt").write_text("".join(test))
    enc = root.parent / "enc"
    save_encoder(
        enc,
        build_pixel_stats_encoder(grid=1),
        builder=PIXEL_STATS_BUILDER,
        kwargs={"grid": 1},
        input_info={"modality": "rgb", "shape": [3, 8, 32, 32]},
    )
    return root, enc


def test_elo_eval_all_folds_clips_and_crops(ucf3, capsys) -> None:
    from elo import cli

    root, enc = ucf3
    out = root.parent / "res"
    args = ["--encoder", str(enc), "--data", str(root), "--out", str(out), "--fold", "all"]
    assert cli.eval_main([*args, "--clips", "3", "--crops", "2", "--protocol", "knn"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["folds"] == [1, 2, 3] and res["fold"] == "all"
    # the demo cache is 8 px wider than the model's 32 px: 2 crops of 32 span its width
    assert (res["clips"], res["crops"], res["crop_size"], res["protocol"]) == (3, 2, 32, "knn")
    folds = res["per_fold"]
    assert [f["fold"] for f in folds] == [1, 2, 3]
    assert all(f["test_videos"] == 8 and f["num_test"] == 8 * 3 for f in folds)
    assert all(f["test_views"] == 8 * 3 * 2 for f in folds)
    assert all(f["num_train"] == 16 for f in folds)
    top1s = [f["top1"] for f in folds]
    assert res["top1"] == pytest.approx(statistics.fmean(top1s))
    assert res["top1_sd"] == pytest.approx(statistics.stdev(top1s))
    assert res["top1"] == 1.0  # motion direction is what pixel statistics measure
    assert np.asarray(res["confusion"]).sum() == 3 * 8  # videos over all folds
    printed = capsys.readouterr().out
    assert "3 folds, 3 clips x 2 crops): top-1 1.000 ± 0.000" in printed
    # a cache no wider than the model's clip: crops of --crop-fraction of it
    narrow = ["data.clip.extra_pixels=0", "data.clip.extra_frames=0"]
    assert cli.eval_main([*args[:-1], "1", "--crops", "3", "--protocol", "linear", *narrow]) == 0
    res = json.loads((out / "results.json").read_text())
    assert (res["folds"], res["crops"], res["crop_size"], res["clips"]) == ([1], 3, 28, "config")
    assert res["per_fold"][0]["test_views"] == 8 * 3 and res["top1_sd"] == 0.0
    capsys.readouterr()
    assert cli.eval_main([*args[:-1], "4"]) == 2
    assert "no fold 4 in this ucf101 layout (folds: 1, 2, 3)" in capsys.readouterr().err
