"""The SimSiam and BYOL ablation switches (docs/ablations.md): each one
changes the computation as intended, in the standalone models, the standalone
trainer (``baselines.trainer``) and the clip-level heads of the ELo objective
(``heads.simsiam`` / ``heads.byol``, trained by ``elo.train.trainer``).

Every assertion is exact or structural (which tensors get gradients, which
parameters move, which learning rates the optimizer holds), so it holds on any CPU.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from _configs import bare_experiment
from torch import nn

from elo.baselines.byol import BYOL, BYOLHead, byol_loss, cosine_tau, tau_at
from elo.baselines.simsiam import (
    BATCH_NORMS,
    SimSiam,
    SimSiamHead,
    negative_cosine,
    simsiam_loss,
    softmax_cross_entropy,
)
from elo.errors import ConfigError
from elo.model.heads import EncoderOutput, FeatureSpec, HeadInputs
from elo.model.network import ELoModel
from elo.model.objective import Weights
from elo.model.terms import TermKey
from elo.train.trainer import lr_factor, make_optimizer, make_scheduler, train_model

SPEC = {"rgb": FeatureSpec("rgb", 8, (), (3, 2, 4, 4))}


def _encoder() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 8))


def _images(b: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, 2, 2, generator=g), torch.randn(b, 3, 2, 2, generator=g)


def _simsiam_head(**section: Any) -> SimSiamHead:
    torch.manual_seed(0)
    head = SimSiamHead.build(TermKey.parse("rgb/simsiam"), SPEC, {"proj_dim": 16, **section})
    assert isinstance(head, SimSiamHead)
    return head


def _leaf_features() -> tuple[dict[str, torch.Tensor], HeadInputs]:
    g = torch.Generator().manual_seed(3)
    emb = {v: torch.randn(6, 8, generator=g, requires_grad=True) for v in ("simsiam1", "simsiam2")}
    feats = {("rgb", v): EncoderOutput([], e) for v, e in emb.items()}
    return emb, HeadInputs(features=feats, views={})


# -- SimSiam ---------------------------------------------------------------------------


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("stop_gradient", [True, False])
def test_simsiam_stop_gradient_and_symmetry_route_gradients(
    stop_gradient: bool, symmetric: bool
) -> None:
    """One-sided loss ``D(p1, z2)``: view 2 is only a target, so with the
    stop-gradient its embedding gets no gradient at all; without it, it does. The
    symmetric loss predicts view 2 too, so both embeddings always get gradients."""
    head = _simsiam_head(stop_gradient=stop_gradient, symmetric=symmetric)
    emb, inputs = _leaf_features()
    out = head(inputs)
    out["loss"].backward()
    g1, g2 = emb["simsiam1"].grad, emb["simsiam2"].grad
    assert g1 is not None and g1.abs().sum() > 0
    if stop_gradient and not symmetric:
        assert g2 is None or bool((g2 == 0).all())
    else:
        assert g2 is not None and g2.abs().sum() > 0
    # the value is the same formula either way: recompute it from the head's parts
    with torch.no_grad():
        z1, z2 = head.projector(emb["simsiam1"]), head.projector(emb["simsiam2"])
        p1, p2 = head.predictor(z1), head.predictor(z2)
        one = negative_cosine(p1, z2).mean()
        expected = 0.5 * (one + negative_cosine(p2, z1).mean()) if symmetric else one
    assert out["loss"].item() == pytest.approx(expected.item(), abs=1e-6)


def test_simsiam_predictor_none_is_identity_and_fixed_is_frozen() -> None:
    none = _simsiam_head(predictor="none")
    assert isinstance(none.predictor, nn.Identity)
    assert not any(k.startswith("predictor.") for k in none.state_dict())
    assert none.fixed_lr_parameters() == []
    emb, inputs = _leaf_features()
    with torch.no_grad():
        z1, z2 = none.projector(emb["simsiam1"]), none.projector(emb["simsiam2"])
    assert none(inputs)["loss"].item() == pytest.approx(
        simsiam_loss(z1, z2, z1, z2).item(), abs=1e-6
    )  # p = z

    fixed = _simsiam_head(predictor="fixed")
    learned = _simsiam_head(predictor="learned")
    assert [p.shape for p in fixed.predictor.parameters()] == [
        p.shape for p in learned.predictor.parameters()
    ]
    assert all(not p.requires_grad for p in fixed.predictor.parameters())
    assert all(p.requires_grad for p in learned.predictor.parameters())
    assert fixed.fixed_lr_parameters() == []  # nothing to schedule: it never moves
    assert learned.fixed_lr_parameters() == list(learned.predictor.parameters())
    assert _simsiam_head(fix_predictor_lr=False).fixed_lr_parameters() == []


def test_simsiam_standalone_param_groups_follow_the_predictor_switch() -> None:
    def groups(**kw: Any) -> list[dict[str, Any]]:
        model = SimSiam(_encoder(), 8, proj_dim=16, pred_dim=4, **kw)
        return model.param_groups(True)

    learned = groups()
    assert [g["fix_lr"] for g in learned] == [False, True]
    assert len(groups(predictor="fixed")) == len(groups(predictor="none")) == 1
    model = SimSiam(_encoder(), 8, proj_dim=16, pred_dim=4, predictor="fixed")
    frozen = {id(p) for p in model.predictor.parameters()}
    assert frozen and not frozen & {id(p) for p in model.param_groups()[0]["params"]}


@pytest.mark.parametrize("variant", list(BATCH_NORMS))
def test_simsiam_batch_norm_variants(variant: str) -> None:
    """Table 3 of the paper: BN after the projector's hidden / output layers and the
    predictor's hidden / output layer."""
    head = _simsiam_head(batch_norm=variant, proj_layers=3)
    proj_bn = [isinstance(m, nn.BatchNorm1d) for m in head.projector]
    pred_bn = [isinstance(m, nn.BatchNorm1d) for m in head.predictor]
    ph, po, qh, qo = BATCH_NORMS[variant]
    assert sum(proj_bn) == 2 * ph + po
    assert isinstance(head.projector[-1], nn.BatchNorm1d) == po
    assert sum(pred_bn) == qh + qo
    assert isinstance(head.predictor[-1], nn.BatchNorm1d) == qo
    # a Linear followed by BN has no bias (BN's shift replaces it); otherwise it has one
    for seq in (head.projector, head.predictor):
        mods = list(seq)
        for i, m in enumerate(mods):
            if isinstance(m, nn.Linear):
                followed = i + 1 < len(mods) and isinstance(mods[i + 1], nn.BatchNorm1d)
                assert (m.bias is None) == followed
    emb, inputs = _leaf_features()
    head(inputs)["loss"].backward()
    assert emb["simsiam1"].grad is not None
    if qo:  # BN on the prediction: per-channel zero mean over the batch (train mode)
        with torch.no_grad():
            p = head.predictor(head.projector(emb["simsiam1"]))
        assert p.mean(0).abs().max().item() < 1e-5


def test_simsiam_cross_entropy_similarity() -> None:
    p = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    z = torch.tensor([[4.0, 5.0, 6.0]], dtype=torch.float64)
    ez = [math.exp(v) for v in (4, 5, 6)]
    lse_p = math.log(sum(math.exp(v) for v in (1, 2, 3)))
    by_hand = -sum(e / sum(ez) * (v - lse_p) for e, v in zip(ez, (1, 2, 3), strict=True))
    assert softmax_cross_entropy(p, z).item() == pytest.approx(by_hand, abs=1e-12)
    assert simsiam_loss(p, p, z, z, similarity="cross_entropy").item() == pytest.approx(
        by_hand, abs=1e-12
    )
    # the stop-gradient applies to the softmax target too
    pl, zl = p.clone().requires_grad_(True), z.clone().requires_grad_(True)
    softmax_cross_entropy(pl, zl).sum().backward()
    assert pl.grad is not None and zl.grad is None
    # the head computes it when configured
    head = _simsiam_head(similarity="cross_entropy")
    emb, inputs = _leaf_features()
    with torch.no_grad():
        z1, z2 = head.projector(emb["simsiam1"]), head.projector(emb["simsiam2"])
        p1, p2 = head.predictor(z1), head.predictor(z2)
        expected = simsiam_loss(p1, p2, z1, z2, similarity="cross_entropy")
        cosine = simsiam_loss(p1, p2, z1, z2)
    got = head(inputs)["loss"].item()
    assert got == pytest.approx(expected.item(), abs=1e-6)
    assert got != pytest.approx(cosine.item(), abs=1e-3)


def test_bad_switch_values_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"heads\.simsiam\.predictor='frozen'.*learned"):
        _simsiam_head(predictor="frozen")
    with pytest.raises(ConfigError, match=r"heads\.simsiam\.batch_norm"):
        _simsiam_head(batch_norm="some")
    with pytest.raises(ConfigError, match=r"heads\.simsiam\.similarity"):
        _simsiam_head(similarity="l2")
    with pytest.raises(ConfigError, match=r"heads\.byol\.tau_schedule='linear'"):
        BYOLHead.build(TermKey.parse("rgb/byol"), SPEC, {"tau_schedule": "linear"})
    with pytest.raises(ConfigError, match=r"heads\.byol\.tau_base=1\.5"):
        BYOLHead.build(TermKey.parse("rgb/byol"), SPEC, {"tau_base": 1.5})
    with pytest.raises(ConfigError, match=r"simsiam\.similarity='dot'"):
        SimSiam(_encoder(), 8, proj_dim=16, similarity="dot")
    with pytest.raises(ConfigError, match=r"byol\.tau_schedule"):
        BYOL(_encoder(), 8, hidden_dim=16, proj_dim=4, tau_schedule="step")


# -- BYOL ------------------------------------------------------------------------------


def test_byol_without_predictor_regresses_the_target_projection() -> None:
    torch.manual_seed(0)
    model = BYOL(_encoder(), 8, hidden_dim=16, proj_dim=4, predictor=False)
    assert isinstance(model.predictor, nn.Identity)
    assert not any(k.startswith("predictor.") for k in model.state_dict())
    x1, x2 = _images()
    out = model(x1, x2)
    with torch.no_grad():
        z1 = model.online_projector(model.online_encoder(x1))
        z2 = model.online_projector(model.online_encoder(x2))
        t1 = model.target_projector(model.target_encoder(x1))
        t2 = model.target_projector(model.target_encoder(x2))
    assert out["loss"].item() == pytest.approx(byol_loss(z1, z2, t1, t2).item(), abs=1e-6)
    out["loss"].backward()
    assert all(p.grad is None for p in model.target_encoder.parameters())
    assert model.online_encoder[1].weight.grad is not None


def _stepped_byol(tau_base: float, schedule: str) -> tuple[BYOL, list[torch.Tensor], float]:
    """One SGD step then one target update; returns the model, the target's weights
    before the update and τ."""
    torch.manual_seed(0)
    model = BYOL(_encoder(), 8, hidden_dim=16, proj_dim=4, tau_base=tau_base, tau_schedule=schedule)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model(*_images())["loss"].backward()
    opt.step()
    before = [p.detach().clone() for p in model.target_encoder.parameters()]
    tau = model.update_target(total_steps=10)
    return model, before, tau


def test_byol_tau_one_never_moves_the_target() -> None:
    model, before, tau = _stepped_byol(1.0, "constant")
    assert tau == 1.0
    online = list(model.online_encoder.parameters())
    for b, t, o in zip(before, model.target_encoder.parameters(), online, strict=True):
        assert torch.equal(t, b)  # still the random init
        assert not torch.equal(t, o)  # while the online network moved


def test_byol_tau_zero_makes_the_target_the_online_network() -> None:
    model, before, tau = _stepped_byol(0.0, "constant")
    assert tau == 0.0
    pairs = [
        (model.target_encoder, model.online_encoder),
        (model.target_projector, model.online_projector),
    ]
    for target, online in pairs:
        for t, o in zip(target.parameters(), online.parameters(), strict=True):
            assert torch.equal(t, o)
    assert not all(
        torch.equal(b, t) for b, t in zip(before, model.target_encoder.parameters(), strict=True)
    )


def test_byol_constant_and_cosine_tau() -> None:
    model, before, tau = _stepped_byol(0.9, "constant")
    assert tau == 0.9 and model.update_target(total_steps=10) == 0.9  # every step
    _, _, tau0 = _stepped_byol(0.9, "cosine")
    assert tau0 == pytest.approx(0.9)
    assert tau_at(5, 10, 0.9, "cosine") == cosine_tau(5, 10, 0.9) == pytest.approx(0.95)
    assert tau_at(5, 10, 0.9, "constant") == 0.9


# -- trainers: learning rates, frozen parameters, batch size ------------------------


def _digits(n: int = 64) -> torch.Tensor:
    from sklearn.datasets import load_digits

    x = torch.tensor(load_digits().images[:n], dtype=torch.float32)[:, None] / 16.0  # N,1,8,8
    return (x.repeat(1, 3, 1, 1) * 255).round().to(torch.uint8)


def _baseline_cfg(objective: str, *extra: str) -> dict[str, Any]:
    from elo.baselines.trainer import load_baseline_config

    cfg = load_baseline_config(
        objective,
        None,
        [
            "encoder.arch=small_cnn",
            "encoder.width=4",
            "data.image_size=8",
            "train.steps=6",
            "train.batch_size=16",
            "train.log_every=1",
            "train.checkpoint_every=0",
            "train.warmup_steps=0",
            "augment.crop_scale=[0.5,1.0]",
            *extra,
        ],
    )
    if objective == "byol":
        cfg["byol"].update(hidden_dim=16, proj_dim=8)
    else:
        cfg["simsiam"].update(proj_dim=16, pred_dim=4)
    return cfg


@pytest.mark.parametrize("fix", [True, False])
def test_baseline_trainer_predictor_lr_fixed_or_decayed(tmp_path: Path, fix: bool) -> None:
    from elo.baselines.trainer import fit
    from elo.rundir import read_jsonl

    cfg = _baseline_cfg("simsiam", f"simsiam.fix_predictor_lr={str(fix).lower()}")
    fit(cfg, _digits(), tmp_path)
    recs = list(read_jsonl(tmp_path / "metrics.jsonl"))
    base = 0.05 * 16 / 256  # lr · batch / 256
    for i, r in enumerate(recs):
        assert r["lr"] == pytest.approx(base * 0.5 * (1 + math.cos(math.pi * i / 6)))
        assert r["predictor_lr"] == pytest.approx(base if fix else r["lr"])
    assert recs[-1]["lr"] < 0.1 * base


def test_baseline_trainer_frozen_predictor_never_moves(tmp_path: Path) -> None:
    from elo.baselines import trainer as tr

    cfg = _baseline_cfg("simsiam", "simsiam.predictor=fixed")
    torch.manual_seed(int(cfg["seed"]))  # fit() seeds the same way before building
    init = tr.build_model(cfg).state_dict()
    tr.fit(cfg, _digits(), tmp_path)
    final = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["model"]
    moved = {k for k in init if not torch.equal(init[k], final[k])}
    buffers = ("running_mean", "running_var", "num_batches_tracked")  # BN statistics
    assert not any(k.startswith("predictor.") and not k.endswith(buffers) for k in moved)
    assert any(k.startswith("projector.") for k in moved)
    assert any(k.startswith("encoder.") for k in moved)
    opt_params = sum(
        len(g["params"])
        for g in torch.load(tmp_path / "checkpoint.pt")["optimizer"]["param_groups"]
    )
    assert opt_params == sum(1 for p in tr.build_model(cfg).parameters() if p.requires_grad)


@pytest.mark.parametrize("objective", ["byol", "simsiam"])
def test_batch_size_switch_scales_batch_and_lr(tmp_path: Path, objective: str) -> None:
    from elo.baselines.trainer import build_model, build_optimizer

    for batch in (8, 32):
        cfg = _baseline_cfg(objective, f"train.batch_size={batch}")
        opt = build_optimizer(build_model(cfg), cfg)
        assert opt.param_groups[0]["lr"] == pytest.approx(float(cfg["train"]["lr"]) * batch / 256)
    from elo.baselines.trainer import BatchPlan

    assert BatchPlan(64, 8, 0).indices(3).shape == (8,)


# -- the clip-level heads in the ELo objective ---------------------------------------


def _elo_cfg(heads: dict[str, Any], **train: Any) -> dict[str, Any]:
    return bare_experiment(
        data={"clip": {"frames": 2, "fps": 8.0, "size": 8}},
        model={"rgb": {"width": 4, "depth": 3, "embed_dim": 8}},
        heads=heads,
        objective={"modalities": ["rgb"], "tasks": "all"},
        train={"optimizer": "sgd", "lr": 0.5, "warmup_steps": 0, "min_lr_ratio": 0.0, **train},
    )


def _clip_batches(n: int, b: int = 4) -> list[dict[str, Any]]:
    g = torch.Generator().manual_seed(0)
    return [{"rgb": torch.randn(b, 3, 2, 8, 8, generator=g)} for _ in range(n)]


def _elo_model(term: str, heads: dict[str, Any]) -> ELoModel:
    torch.manual_seed(0)
    t = TermKey.parse(term)
    return ELoModel(_elo_cfg(heads), Weights([t], {term: 1.0}))


def test_elo_heads_take_the_switches_from_the_objective_config() -> None:
    sim = _elo_model(
        "rgb/simsiam",
        {
            "simsiam": {
                "proj_dim": 16,
                "predictor": "fixed",
                "batch_norm": "none",
                "similarity": "cross_entropy",
                "symmetric": False,
                "stop_gradient": False,
            }
        },
    )
    head = sim.heads["rgb/simsiam"]
    assert isinstance(head, SimSiamHead)
    cfg = head.config
    assert (cfg.predictor, cfg.batch_norm, cfg.similarity) == ("fixed", "none", "cross_entropy")
    assert (cfg.symmetric, cfg.stop_gradient) == (False, False)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in head.modules())
    assert all(not p.requires_grad for p in head.predictor.parameters())
    out = sim(_clip_batches(1)[0], step=0)
    assert torch.isfinite(out.total)

    byol = _elo_model("rgb/byol", {"byol": {"hidden_dim": 8, "proj_dim": 4, "predictor": False}})
    bhead = byol.heads["rgb/byol"]
    assert isinstance(bhead, BYOLHead) and isinstance(bhead.predictor, nn.Identity)
    with pytest.raises(ConfigError, match=r"heads\.simsiam\.predictor"):
        _elo_model("rgb/simsiam", {"simsiam": {"predictor": "random"}})


def test_elo_optimizer_keeps_the_simsiam_predictor_lr_fixed() -> None:
    model = _elo_model("rgb/simsiam", {"simsiam": {"proj_dim": 16}})
    from elo.train.settings import TrainSettings

    t = TrainSettings.from_config(
        _elo_cfg({}, optimizer="sgd", lr=0.2, momentum=0.9, weight_decay=0.0)
    )
    opt = make_optimizer(model, t)
    assert [g["fix_lr"] for g in opt.param_groups] == [False, True]
    head = model.heads["rgb/simsiam"]
    assert {id(p) for p in opt.param_groups[1]["params"]} == {
        id(p) for p in head.predictor.parameters()
    }
    n_trainable = sum(1 for p in model.parameters() if p.requires_grad)
    assert sum(len(g["params"]) for g in opt.param_groups) == n_trainable
    sched = make_scheduler(opt, 10, 2, 0.0)
    for s in range(1, 8):
        opt.step()
        sched.step()
        assert opt.param_groups[1]["lr"] == pytest.approx(0.2)
        assert opt.param_groups[0]["lr"] == pytest.approx(0.2 * lr_factor(s, 10, 2, 0.0))
    # not fixed: one group, everything on the schedule
    loose = _elo_model("rgb/simsiam", {"simsiam": {"proj_dim": 16, "fix_predictor_lr": False}})
    assert len(make_optimizer(loose, t).param_groups) == 1


def test_elo_trainer_with_frozen_predictor_and_tau_zero(tmp_path: Path) -> None:
    """Through ``elo.train.trainer.train_model``: a ``fixed`` SimSiam predictor ends at its
    initial weights while the encoder moves; BYOL with constant τ = 0 ends with the
    target equal to the online encoder."""
    heads = {"simsiam": {"proj_dim": 16, "predictor": "fixed"}}
    before = copy.deepcopy(_elo_model("rgb/simsiam", heads).state_dict())
    res = train_model(
        _elo_cfg(heads, batch_size=4),
        Weights([TermKey.parse("rgb/simsiam")], {"rgb/simsiam": 1.0}),
        data_root=None,
        steps=3,
        progress=False,
        loader=_clip_batches(3),
    )
    after = res.model.state_dict()
    pred = [k for k in before if ".predictor." in k and "running" not in k and "batches" not in k]
    assert pred and all(torch.equal(before[k], after[k]) for k in pred)
    assert any(
        not torch.equal(before[k], after[k]) for k in before if k.startswith("encoders.rgb.")
    )

    heads = {"byol": {"hidden_dim": 8, "proj_dim": 4, "tau_schedule": "constant", "tau_base": 0.0}}
    res = train_model(
        _elo_cfg(heads, batch_size=4),
        Weights([TermKey.parse("rgb/byol")], {"rgb/byol": 1.0}),
        data_root=None,
        steps=2,
        progress=False,
        loader=_clip_batches(2),
    )
    bhead = res.model.heads["rgb/byol"]
    assert isinstance(bhead, BYOLHead) and bhead.target_encoder is not None
    online = res.model.encoders["rgb"]
    for t, o in zip(bhead.target_encoder.parameters(), online.parameters(), strict=True):
        assert torch.equal(t, o)
