"""The loop parts both trainers share (elo/train/loop.py) reproduce, bit for bit, what
each trainer computed on its own before: the batch order of a step, the learning rate,
the checkpoint; and the one ``embed`` (elo/model/network.py) serves the baselines' kNN."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from elo.errors import ConfigError
from elo.train.loop import BatchPlan, ResumableBatchSampler, load_state, lr_at, save_state


def _elo_batch_before(n: int, bs: int, seed: int, step: int) -> list[int]:
    """elo/train/trainer.py's ResumableBatchSampler.batch before the shared module."""
    epoch, pos = divmod(step, max(1, n // bs))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 7919 + epoch))
    return perm[pos * bs : (pos + 1) * bs].tolist()


def _baseline_batch_before(n: int, bs: int, seed: int, step: int) -> list[int]:
    """baselines/trainer.py's BatchPlan.indices before the shared module."""
    out = []
    for p in range(step * bs, (step + 1) * bs):
        g = torch.Generator().manual_seed(seed * 1_000_003 + p // n)
        out.append(int(torch.randperm(n, generator=g)[p % n]))
    return out


@pytest.mark.parametrize(("n", "bs", "seed"), [(10, 3, 0), (16, 4, 5), (7, 7, 2)])
def test_batch_plans_keep_each_trainers_order(n: int, bs: int, seed: int) -> None:
    from elo.baselines.trainer import BatchPlan as BaselinePlan

    sampler = ResumableBatchSampler(n, bs, seed=seed, start_step=3)
    stream = iter(sampler)
    base = BaselinePlan(n, bs, seed)
    for step in range(12):
        assert sampler.batch(step) == _elo_batch_before(n, bs, seed, step)
        assert base.indices(step).tolist() == _baseline_batch_before(n, bs, seed, step)
        if step >= 3:
            assert next(stream) == sampler.batch(step)
    # drop-last epochs are permutations: each epoch's batches never repeat an index
    epoch = [i for s in range(sampler.per_epoch) for i in sampler.batch(s)]
    assert len(set(epoch)) == len(epoch) == (n // bs) * bs


def test_plan_without_drop_last_straddles_epochs() -> None:
    plan = BatchPlan(5, 3, 1, stride=1_000_003, drop_last=False)
    stream = torch.cat([plan.indices(s) for s in range(4)])  # 12 positions
    assert plan.indices(1).tolist() == [*plan.permutation(0)[3:5], plan.permutation(1)[0]]
    assert sorted(stream[:5].tolist()) == list(range(5))  # epoch 0
    assert sorted(stream[5:10].tolist()) == list(range(5))  # epoch 1
    assert not torch.equal(plan.permutation(0), plan.permutation(1))


def test_lr_at_is_each_trainers_old_schedule_bit_for_bit() -> None:
    def elo_factor(step: int, total: int, warmup: int, floor: float) -> float:
        if warmup > 0 and step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    def baseline_lr(step: int, total: int, base: float, warmup: int) -> float:
        if warmup > 0 and step < warmup:
            return base * (step + 1) / warmup
        t = (step - warmup) / max(1, total - warmup)
        return base * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))

    for total, warmup in [(40, 0), (40, 5), (7, 7), (100, 13)]:
        for step in range(total + 3):
            for floor in (0.0, 0.1):
                assert lr_at(step, total, warmup, floor=floor) == elo_factor(
                    step, total, warmup, floor
                )
            for base in (0.05 * 64 / 256, 0.002, 0.3):
                assert lr_at(step, total, warmup, base=base) == baseline_lr(
                    step, total, base, warmup
                )


def test_checkpoint_round_trip_and_a_broken_file(tmp_path: Path) -> None:
    state = {"step": 3, "model": {"w": torch.arange(4.0)}, "note": "x"}
    save_state(tmp_path / "ck.pt", state)
    back = load_state(tmp_path / "ck.pt")
    assert back["step"] == 3 and back["note"] == "x"
    assert torch.equal(back["model"]["w"], torch.arange(4.0))
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]  # no temp file left
    (tmp_path / "bad.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ConfigError, match="cannot read the checkpoint"):
        load_state(tmp_path / "bad.pt")


def test_baseline_embeddings_are_the_one_embed() -> None:
    from elo.baselines.augment import normalize
    from elo.baselines.image_encoder import build_image_encoder
    from elo.baselines.trainer import embed_images

    torch.manual_seed(0)
    enc = build_image_encoder(width=8)
    images = torch.randint(0, 256, (7, 3, 12, 12), dtype=torch.uint8)
    enc.train()
    got = embed_images(enc, images, "cpu")
    assert enc.training and not got.requires_grad and got.shape == (7, enc.embed_dim)
    enc.eval()
    with torch.no_grad():
        want = enc(normalize(images.float().div(255))).embedding
    assert torch.allclose(got, want, atol=1e-6)
