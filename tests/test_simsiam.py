"""SimSiam (arXiv 2011.10566): loss values, invariances, gradients, architecture, the
collapse monitor and the task head (reference values from Chen & He, 2021; docs/ablations.md)."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from elo.baselines.monitor import CollapseMonitor, normalized_std
from elo.baselines.simsiam import (
    Predictor,
    Projector,
    SimSiam,
    SimSiamHead,
    negative_cosine,
    simsiam_loss,
)
from elo.model.heads import TASKS, EncoderOutput, FeatureSpec, HeadInputs
from elo.model.terms import TermKey

P = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
Z = torch.tensor([[4.0, 5.0, 6.0]], dtype=torch.float64)


def test_fixed_vector_value() -> None:
    assert negative_cosine(P, Z).item() == pytest.approx(-0.9746318462, abs=1e-9)
    assert simsiam_loss(P, P, Z, Z).item() == pytest.approx(-0.9746318462, abs=1e-9)


def test_symmetry_scale_invariance_and_range() -> None:
    g = torch.Generator().manual_seed(0)
    p1, p2, z1, z2 = (torch.randn(16, 32, generator=g) for _ in range(4))
    loss = simsiam_loss(p1, p2, z1, z2)
    assert simsiam_loss(p2, p1, z2, z1).item() == pytest.approx(loss.item(), rel=1e-6)
    assert simsiam_loss(2 * p1, 9 * p2, 0.1 * z1, 3 * z2).item() == pytest.approx(
        loss.item(), rel=1e-5
    )
    assert simsiam_loss(p1, p2, p2, p1).item() == pytest.approx(-1.0, abs=1e-6)
    assert simsiam_loss(p1, p2, -p2, -p1).item() == pytest.approx(1.0, abs=1e-6)


def test_stop_gradient_and_orthogonal_gradient() -> None:
    g = torch.Generator().manual_seed(1)
    p = torch.randn(8, 16, generator=g, requires_grad=True)
    z = torch.randn(8, 16, generator=g, requires_grad=True)
    negative_cosine(p, z).sum().backward()
    assert p.grad is not None and z.grad is None
    assert torch.allclose((p.grad * p).sum(1), torch.zeros(8), atol=1e-6)
    z2 = z.detach().clone().requires_grad_(True)
    negative_cosine(p, z2, stop_gradient=False).sum().backward()
    assert z2.grad is not None and z2.grad.abs().sum() > 0  # the ablation lets it through


def test_independent_gaussians_give_zero() -> None:
    g = torch.Generator().manual_seed(2)
    p, z = torch.randn(4096, 256, generator=g), torch.randn(4096, 256, generator=g)
    assert negative_cosine(p, z).mean().item() == pytest.approx(0.0, abs=0.01)


def test_projector_and_predictor_layout() -> None:
    proj = Projector(32, 64, 128, layers=3)
    linears = [m for m in proj if isinstance(m, nn.Linear)]
    bns = [m for m in proj if isinstance(m, nn.BatchNorm1d)]
    assert [(m.in_features, m.out_features) for m in linears] == [(32, 64), (64, 64), (64, 128)]
    assert all(m.bias is None for m in linears)
    assert [bn.affine for bn in bns] == [True, True, False]
    assert not isinstance(proj[-1], nn.ReLU)
    pred = Predictor(128, 32)
    assert [type(m).__name__ for m in pred] == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert pred[0].bias is None and pred[0].out_features == 32 and pred[3].out_features == 128
    assert proj(torch.randn(5, 32)).shape == (5, 128)


def test_param_groups_fix_predictor_lr() -> None:
    model = SimSiam(nn.Sequential(nn.Flatten(), nn.Linear(12, 8)), 8, proj_dim=16, pred_dim=4)
    groups = model.param_groups(True)
    assert [g["fix_lr"] for g in groups] == [False, True]
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in model.predictor.parameters()}


def test_monitor_values_and_warning(caplog: pytest.LogCaptureFixture) -> None:
    g = torch.Generator().manual_seed(0)
    healthy = normalized_std(torch.randn(2048, 256, generator=g)).item()
    assert healthy == pytest.approx(1 / 16, rel=0.03)  # 1/sqrt(d)
    mon = CollapseMonitor(256, threshold_ratio=0.1)
    with caplog.at_level(logging.WARNING):
        mon.update(torch.randn(64, 256, generator=g))
        assert mon.fired == 0 and not mon.collapsed
        collapsed = torch.randn(1, 256, generator=g) + 1e-4 * torch.randn(64, 256, generator=g)
        mon.update(collapsed, step=7)
    assert mon.fired == 1 and mon.collapsed and mon.last < mon.threshold
    assert "collapse warning at step 7" in caplog.text


def test_head_registered_loss_and_mask() -> None:
    assert TASKS.get("simsiam") is SimSiamHead
    torch.manual_seed(0)
    spec = {"rgb": FeatureSpec("rgb", 8, (), (3, 2, 4, 4))}
    head = SimSiamHead.build(TermKey.parse("rgb/simsiam"), spec, {"proj_dim": 16})
    assert head.predictor[0].out_features == 4  # d/4 bottleneck
    assert head.fixed_lr_parameters() == list(head.predictor.parameters())
    emb = {v: torch.randn(6, 8, requires_grad=True) for v in ("simsiam1", "simsiam2")}
    feats = {("rgb", v): EncoderOutput([], e) for v, e in emb.items()}
    out = head(HeadInputs(features=feats, views={}))
    # -½cos(p1, z2) - ½cos(p2, z1), mean over the batch, recomputed from the head's
    # projector and predictor (the pairing across views is what is checked)
    with torch.no_grad():
        z1, z2 = (head.projector(emb[v]) for v in ("simsiam1", "simsiam2"))
        p1, p2 = head.predictor(z1), head.predictor(z2)
        cos = torch.nn.functional.cosine_similarity
        want = (-0.5 * cos(p1, z2) - 0.5 * cos(p2, z1)).mean()
        swapped = (-0.5 * cos(p1, z1) - 0.5 * cos(p2, z2)).mean()
    assert out["loss"].item() == pytest.approx(want.item(), rel=1e-5)
    assert abs(want.item() - swapped.item()) > 1e-3
    assert out["collapse_std"].item() > 0
    out["loss"].backward()
    assert emb["simsiam1"].grad is not None
    masked = head(
        HeadInputs(features=feats, views={}, mask={"rgb": torch.tensor([1, 1, 0, 0, 0, 0]).bool()})
    )
    assert torch.isfinite(masked["loss"])
    with pytest.raises(Exception, match="unknown config key 'heads.simsiam.foo'"):
        SimSiamHead.build(TermKey.parse("rgb/simsiam"), spec, {"foo": 1})
