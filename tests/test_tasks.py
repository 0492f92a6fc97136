"""Every registered task (parametrized over ``task_names()``, so a new task is tested
for free) and every distillation term, on a REAL batch decoded from video files written
with PyAV; plus per-task learning checks that can fail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from _configs import bare_experiment
from _media import moving_square, write_video

from elo.model.heads import TASKS
from elo.model.network import ELoModel
from elo.model.objective import Weights, enumerate_terms, task_names
from elo.model.terms import TermKey

MODS = ["rgb", "flow", "audio"]
TINY = {"width": 8, "depth": 3, "embed_dim": 32}


def tiny_cfg(**heads: Any) -> dict[str, Any]:
    """An experiment config with CPU-tiny clips (8 frames, 32x32, 1 s) and encoders."""
    return bare_experiment(
        data={"clip": {"frames": 8, "fps": 8.0, "size": 32}, "audio": {"sample_rate": 16000}},
        model={m: dict(TINY) for m in MODS},
        heads=dict(heads),
        objective={"modalities": MODS, "tasks": "all"},
    )


def write_clips(
    root: Path,
    n: int,
    *,
    static: bool = False,
    seed: int = 0,
    silent: tuple[int, ...] = (),
    gop_size: int = 1,
) -> Path:
    """``n`` two-second clips: a moving square (or a still, noisy frame) with a chirp
    whose pitch differs per clip; clips listed in ``silent`` have no audio track."""
    rng = np.random.default_rng(seed)
    t = np.arange(32000) / 16000
    for i in range(n):
        if static:
            still = moving_square(1, 32, 32, side=8, seed=seed * 100 + i)[0].astype(np.int16)
            noise = rng.integers(-6, 7, size=(16, 32, 32, 3))
            frames = np.clip(still[None] + noise, 0, 255).astype(np.uint8)
        else:
            speed = (int(rng.integers(1, 4)) * int(rng.choice([-1, 1])), int(rng.integers(-2, 3)))
            frames = moving_square(16, 32, 32, speed=speed, side=8, seed=seed * 100 + i)
        f0 = 250.0 + 90.0 * i
        audio = (0.4 * np.sin(2 * np.pi * f0 * t * (1 + 0.5 * t))).astype(np.float32)
        write_video(
            root / f"clip{i:02d}.mp4",
            frames,
            fps=8.0,
            audio=None if i in silent else audio,
            gop_size=gop_size,
        )
    return root


def real_batch(root: Path, batch_size: int, modalities: list[str] | None = None) -> dict[str, Any]:
    from elo.data.datasets import make_loader

    loader = make_loader(
        tiny_cfg(),
        root,
        split=None,
        modalities=modalities or MODS,
        batch_size=batch_size,
        shuffle=False,
    )
    return next(iter(loader))


@pytest.fixture(scope="session")
def clips_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clips(tmp_path_factory.mktemp("clips") / "videos", 8, silent=(5,))


@pytest.fixture(scope="session")
def batch(clips_dir: Path) -> dict[str, Any]:
    return real_batch(clips_dir, 8)


def test_real_batch_follows_the_contract(batch: dict[str, Any]) -> None:
    assert batch["rgb"].shape == (8, 3, 8, 32, 32)
    assert batch["flow"].shape[:3] == (8, 2, 7)
    assert batch["audio"].shape[:2] == (8, 1)
    assert batch["present"]["audio"].tolist() == [i != 5 for i in range(8)]
    assert batch["rgb"].std() > 0.1 and batch["flow"].abs().max() > 0.01


def single_term_model(term: TermKey, cfg: dict[str, Any] | None = None, seed: int = 0) -> ELoModel:
    torch.manual_seed(seed)
    return ELoModel(cfg or tiny_cfg(), Weights([term], {str(term): 1.0}), seed=seed)


def check_term(term: TermKey, batch: dict[str, Any]) -> None:
    """Forward + backward of one term: finite loss, gradients exactly where it trains."""
    model = single_term_model(term)
    model.train()
    out = model(batch, step=3)
    loss = out.raw[str(term)]
    assert loss.dim() == 0 and torch.isfinite(loss), f"{term}: loss {loss}"
    out.total.backward()
    cls = model.head_classes[str(term)]
    encoded = {m for m, _ in cls.encoded_views(term)}
    trained = {term.student} if term.arity == "distill" else encoded
    for m, enc in model.encoders.items():
        grads = [p.grad for p in enc.parameters() if p.requires_grad]
        nonzero = any(g is not None and g.abs().sum() > 0 for g in grads)
        if m in trained:
            assert nonzero, f"{term}: encoder {m} gets no gradient"
        else:  # stop-gradient teacher, or an encoder the term never runs
            assert not nonzero, f"{term}: encoder {m} must get no gradient"
    head = model.heads[str(term)]
    head_grads = [p.grad for p in head.parameters() if p.requires_grad]
    if head_grads:
        assert any(g is not None and g.abs().sum() > 0 for g in head_grads), (
            f"{term}: head untrained"
        )
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad and p.grad is not None]
    assert not frozen, f"{term}: gradient reached frozen parameters {frozen[:3]}"


@pytest.mark.parametrize("task", task_names())  # distill: below
def test_every_task_trains_on_a_real_batch(task: str, batch: dict[str, Any]) -> None:
    terms = enumerate_terms(MODS, [task])
    assert terms, f"task {task} supports no modality combination of {MODS}"
    if getattr(TASKS.get(task), "needs_labels", False):  # the supervised control
        n = len(batch["meta"]["label"])
        batch = {**batch, "meta": {**batch["meta"], "label": torch.arange(n) % 4}}
    for term in terms:
        check_term(term, batch)


@pytest.mark.parametrize("teacher", ["flow", "audio"])
def test_distillation_trains_rgb_only(teacher: str, batch: dict[str, Any]) -> None:
    for level in (1, 2, 3):
        check_term(TermKey("distill", (teacher, "rgb"), "distill", level), batch)


def test_term_keys_cover_every_meaningful_combination() -> None:
    keys = {
        str(t)
        for t in enumerate_terms(
            MODS,
            ["reconstruction", "future", "transfer", "temporal_order", "contrastive", "alignment"],
        )
    }
    for m in MODS:
        assert {f"{m}/reconstruction", f"{m}/future", f"{m}/temporal_order"} <= keys
    for a, b in [("rgb", "flow"), ("rgb", "audio"), ("flow", "audio")]:
        assert {f"{a}+{b}/contrastive", f"{a}+{b}/alignment", f"{a}->{b}/transfer"} <= keys
    assert "flow->rgb/transfer" not in keys and "audio->rgb/transfer" not in keys
    assert len(keys) == 18


# -- learning checks (each can fail) ---------------------------------------------------
def fit(
    term: TermKey,
    batch: dict[str, Any],
    steps: int,
    *,
    vary_views: bool,
    cfg: dict[str, Any] | None = None,
    seed: int = 0,
) -> tuple[ELoModel, list[float]]:
    """Train one term with AdamW; ``vary_views=False`` keeps the same views every step
    (memorization), otherwise each step draws new views."""
    model = single_term_model(term, cfg, seed=seed)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for s in range(steps):
        out = model(batch, step=s if vary_views else 0)
        opt.zero_grad()
        out.total.backward()
        opt.step()
        losses.append(float(out.raw[str(term)].detach()))  # raw: the total is normalised
    return model, losses


@pytest.fixture(scope="session")
def memo_batch(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return real_batch(write_clips(tmp_path_factory.mktemp("memo") / "v", 8, seed=3), 8)


@pytest.mark.parametrize("key", ["rgb/temporal_order", "rgb+audio/alignment", "rgb+flow/alignment"])
def test_classification_tasks_memorize_a_tiny_set(key: str, memo_batch: dict[str, Any]) -> None:
    """Measured over model seeds 0-5: 8/8 for every key and seed (sd 0). The bound
    allows two of eight wrong (chance is 1/2 for ordering, 1/2 for alignment), so it
    is not one example away from the measured value."""
    term = TermKey.parse(key)
    model, _ = fit(term, memo_batch, 25, vary_views=False)
    with torch.no_grad():
        out = model(memo_batch, step=0)
    acc = float(out.logs[f"{key}/accuracy"])
    assert acc >= 0.75, f"{key}: training accuracy {acc:.2f} after 25 steps"


def test_reconstruction_loss_falls(memo_batch: dict[str, Any]) -> None:
    """First / last raw loss over model seeds 0-5: 4.91 4.72 4.62 3.93 4.27 4.62, mean
    4.51, sd 0.35; the bound (3x) is 4.3 sd below the mean."""
    small = {k: v[:4] if isinstance(v, torch.Tensor) else v for k, v in memo_batch.items()}
    small["present"] = {k: v[:4] for k, v in memo_batch["present"].items()}
    cfg = tiny_cfg(reconstruction={"hidden": 8})
    _, losses = fit(TermKey.parse("rgb/reconstruction"), small, 25, vary_views=False, cfg=cfg)
    assert losses[-1] < losses[0] / 3, f"loss {losses[0]:.3f} -> {losses[-1]:.3f}: not 3x lower"


def held_out_order_accuracy(tmp: Path, *, static: bool, form: str, seed: int = 0) -> float:
    """Train rgb/temporal_order (``form``) with fresh views each step on 16 clips encoded
    with one keyframe per clip (the codec arrow-of-time setting); mean accuracy on 16
    other clips over 16 view draws."""
    train = real_batch(
        write_clips(tmp / "train", 16, static=static, seed=1, gop_size=16), 16, ["rgb"]
    )
    test = real_batch(
        write_clips(tmp / "test", 16, static=static, seed=2, gop_size=16), 16, ["rgb"]
    )
    cfg = tiny_cfg(temporal_order={"form": form})
    model, _ = fit(
        TermKey.parse("rgb/temporal_order"), train, 60, vary_views=True, cfg=cfg, seed=seed
    )
    model.eval()
    with torch.no_grad():
        accs = [
            float(model(test, step=1000 + s).logs["rgb/temporal_order/accuracy"]) for s in range(16)
        ]
    return sum(accs) / len(accs)


def test_ordering_on_motionless_clips_stays_at_chance(tmp_path: Path) -> None:
    """No shortcut (codec sharpness decay, label leaks in the view) may reveal the order
    of still clips; the same recipe on moving clips does learn the order.

    Measured over model seeds 0-5 (this recipe, AMD/Intel x86-64, one thread):
    still clips, paper's 3-way form (forward vs reversed is where the codec's arrow of
    time would leak): 0.375 0.355 0.375 0.391 0.375 0.375, mean 0.374, sd 0.011 (a
    constant predictor scores 6/16 = 0.375); bound 0.45 is +6.9 sd. Moving clips, the
    default coherent-vs-shuffled form (chance 0.5): 0.812 0.965 0.863 0.996 0.918 0.914,
    mean 0.911, sd 0.067; bound 0.6 is -4.6 sd. (The 3-way form on moving clips learns
    in only 4 of 6 seeds at this budget, 0.375-0.664, so it cannot be the power arm.)
    """
    still = held_out_order_accuracy(tmp_path / "still", static=True, form="3way")
    moving = held_out_order_accuracy(tmp_path / "moving", static=False, form="shuffle")
    assert still < 0.45, f"order of motionless clips predicted at {still:.2f} (chance 0.33)"
    assert moving > 0.6, f"order of moving clips only {moving:.2f}: the check has no power"
