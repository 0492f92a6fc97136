"""The fitness clips: a held-out slice of the train pool that no candidate trains on
(never the test split), and embeddings with BatchNorm statistics recalibrated on them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from elo.config import load_config
from elo.errors import ConfigError, DataError
from elo.search.fitness.data import (
    check_heldout_split,
    fitness_embed,
    heldout_clips,
    heldout_videos,
    training_loader,
)


def test_heldout_videos_fraction_deterministic_and_stable() -> None:
    rels = [f"c{i % 5}/clip_{i}.mp4" for i in range(200)]
    held = heldout_videos(rels, 0.2)
    assert len(held) == 40 and held <= set(rels)
    assert heldout_videos(list(reversed(rels)), 0.2) == held  # order does not matter
    # adding videos keeps most of the slice (a hash rank, not a position)
    more = heldout_videos(rels + [f"new/clip_{i}.mp4" for i in range(20)], 0.2)
    assert len(held & more) >= 30
    # every clip of a video goes together; at least one held out, never all
    assert heldout_videos(["a.mp4", "a.mp4", "b.mp4"], 0.01) in ({"a.mp4"}, {"b.mp4"})
    assert len(heldout_videos(["a.mp4", "b.mp4"], 0.99)) == 1
    with pytest.raises(ConfigError, match="search.heldout_fraction"):
        heldout_videos(rels, 0.0)
    with pytest.raises(DataError, match="at least 2"):
        heldout_videos(["a.mp4"], 0.5)
    with pytest.raises(ConfigError, match="search.heldout_split"):
        check_heldout_split("test")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from elo.data.demo_data import make_demo

    return make_demo(
        tmp_path_factory.mktemp("demo") / "demo", clips=30, classes=3, seed=0, workers=1
    )


def test_training_loader_and_fitness_clips_are_disjoint_and_not_test(demo: Path) -> None:
    import csv

    cfg = load_config("demo")
    with open(demo / "labels.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    test_ids = {r["path"].rsplit(".", 1)[0] for r in rows if r["split"] == "test"}
    train_ids = {r["path"].rsplit(".", 1)[0] for r in rows if r["split"] == "train"}
    held = heldout_clips(cfg, demo, split="train", fraction=0.25, modalities=("rgb", "flow"))
    held_ids = {c.split("#")[0] for c in held["clip_id"]}
    assert held["rgb"].shape[0] == held["flow"].shape[0] == len(held["labels"]) == len(held_ids)
    assert held_ids <= train_ids and not held_ids & test_ids
    assert len(held_ids) == round(0.25 * len(train_ids))
    loader = training_loader(cfg, demo, fraction=0.25, modalities=("rgb",), batch_size=4, seed=0)
    seen = {c.split("#")[0] for b in loader for c in b["meta"]["clip_id"]}
    assert seen == train_ids - held_ids  # every other train video, none held out
    # the same slice on every call (every worker and candidate scores the same clips)
    again = heldout_clips(cfg, demo, split="train", fraction=0.25)
    assert again["clip_id"] == held["clip_id"] and torch.equal(again["rgb"], held["rgb"])


def _encoder(seed: int = 0) -> torch.nn.Module:
    from elo.model.encoders import build_video_encoder

    torch.manual_seed(seed)
    return build_video_encoder({"width": 8, "conv": "2plus1d"})


def test_recalibrated_bn_ignores_stale_statistics_and_leaves_the_encoder_alone() -> None:
    x = torch.randn(12, 3, 8, 32, 32) * 2.0 + 0.5  # N,3,T,H,W, not unit statistics
    enc = _encoder()
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    fresh = fitness_embed(enc, x)
    for k, v in enc.state_dict().items():  # the candidate's encoder is untouched
        assert torch.equal(v, before[k]), k
    # corrupt the running statistics: eval mode changes, the recalibrated embedding not
    with torch.no_grad():
        for m in enc.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.add_(3.0)
                m.running_var.mul_(25.0)
    stale = fitness_embed(enc, x, bn="eval")
    assert torch.allclose(fitness_embed(enc, x), fresh, atol=1e-6)
    assert not torch.allclose(stale, fresh, atol=1e-2)


def test_recalibrated_bn_equals_batch_statistics_over_the_clips() -> None:
    """With every clip in one batch, estimated statistics are that batch's statistics:
    recalibrated eval embeddings equal train-mode embeddings up to the unbiased vs
    biased variance (a factor n/(n-1), n = voxels per channel: measured max difference
    1.9 % of the embedding std at 64 px, 16 clips), while a fresh encoder's eval-mode
    embeddings (initial statistics 0 / 1) are far from both."""
    x = torch.randn(16, 3, 8, 64, 64)
    enc = _encoder(1)
    rec = fitness_embed(enc, x, batch_size=64)
    train = fitness_embed(enc, x, bn="train", batch_size=64)
    init = fitness_embed(enc, x, bn="eval")
    assert rec.shape == init.shape == (16, enc.embed_dim)
    scale = float(train.std())
    assert float((rec - train).abs().max()) < 0.05 * scale
    assert float((init - train).abs().max()) > 0.5 * scale
    enc.eval()
    fitness_embed(enc, x[:4], bn="train")
    assert not enc.training  # the mode is restored
    with pytest.raises(ConfigError, match="search.heldout_bn"):
        fitness_embed(enc, x, bn="running")


def test_centre_crop_cuts_every_modality_to_the_model_input_around_the_centre() -> None:
    from elo.model.network import input_shapes
    from elo.search.fitness.data import centre_crop

    cfg = load_config("demo")
    cfg["data"]["clip"].update(frames=8, size=32)
    shapes = input_shapes(cfg)
    rgb = torch.arange(2 * 3 * 16 * 40 * 40, dtype=torch.float32).reshape(2, 3, 16, 40, 40)
    flow = torch.randn(2, 2, 15, 40, 40)
    audio = torch.randn(2, 1, shapes["audio"][1], shapes["audio"][2] + 6)
    out = centre_crop(cfg, {"rgb": rgb, "flow": flow, "audio": audio})
    for m in ("rgb", "flow", "audio"):
        assert tuple(out[m].shape[1:]) == shapes[m], m
    assert torch.equal(out["rgb"], rgb[:, :, 4:12, 4:36, 4:36])
    assert torch.equal(out["flow"], flow[:, :, 4:11, 4:36, 4:36])
    assert torch.equal(out["audio"], audio[..., 3:-3])
    same = centre_crop(cfg, {"rgb": out["rgb"]})["rgb"]  # already the right size: untouched
    assert torch.equal(same, out["rgb"])


def test_a_trial_trains_without_the_slice_and_scores_on_it(demo: Path) -> None:
    """One search trial (no Ray): the candidate's loader skips the held-out videos, the
    fitness embeds exactly them; the test split is refused as fitness clips."""
    import csv
    from dataclasses import replace

    from elo.model.objective import Weights, terms_from_config
    from elo.search.settings import SearchSettings, fitness_section
    from elo.search.trainable import TrialContext, _training_loader, evaluate

    cfg = load_config("demo", ["objective.modalities=[rgb]", "train.batch_size=4"])
    cfg["fitness"] = fitness_section("rankme")
    s = SearchSettings.from_config(cfg)
    assert (s.heldout_split, s.heldout_fraction, s.heldout_bn) == ("train", 0.2, "recalibrate")
    ctx = replace(TrialContext.from_settings(cfg, s, str(demo)), steps=2, heldout_fraction=0.25)
    terms = terms_from_config(cfg)
    lam = {str(t): float(str(t) == "rgb/reconstruction") for t in terms}
    with open(demo / "labels.csv", encoding="utf-8") as fh:
        n_train = sum(r["split"] == "train" for r in csv.DictReader(fh))
    loader = _training_loader(ctx, Weights(terms, lam))
    assert len(loader.dataset) == n_train - round(0.25 * n_train)
    report = evaluate(ctx, lam)
    assert report["metrics"]["heldout_clips"] == round(0.25 * n_train)
    assert 0 < report["fitness"] <= 1  # relative RankMe of a live encoder
    with pytest.raises(ConfigError, match="search.heldout_split"):
        replace(ctx, heldout_split="test")
    with pytest.raises(ConfigError, match="search.heldout_bn"):
        replace(ctx, heldout_bn="stale")
