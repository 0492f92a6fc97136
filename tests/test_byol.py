"""BYOL (arXiv 2006.07733): loss values, invariances, gradients, EMA and τ schedule,
and the task head (reference values from Grill et al., 2020; docs/ablations.md)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from elo.baselines.byol import (
    BYOL,
    MLP,
    BYOLHead,
    byol_loss,
    cosine_tau,
    ema_update,
    regression_loss,
)
from elo.model.heads import TASKS, EncoderOutput, FeatureSpec, HeadInputs
from elo.model.terms import TermKey

P = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
Z = torch.tensor([[4.0, 5.0, 6.0]], dtype=torch.float64)
COS = 0.9746318462  # cos([1,2,3], [4,5,6])


def test_fixed_vector_values() -> None:
    assert regression_loss(P, Z).item() == pytest.approx(0.0507363076, abs=1e-9)
    assert regression_loss(P, Z).item() == pytest.approx(2 - 2 * COS, abs=1e-9)
    # symmetric sum of two identical pairs
    assert byol_loss(P, P, Z, Z).item() == pytest.approx(2 * 0.0507363076, abs=1e-6)


def test_symmetry_scale_invariance_and_range() -> None:
    g = torch.Generator().manual_seed(0)
    p1, p2, z1, z2 = (torch.randn(16, 32, generator=g) for _ in range(4))
    loss = byol_loss(p1, p2, z1, z2)
    assert byol_loss(p2, p1, z2, z1).item() == pytest.approx(loss.item(), rel=1e-6)
    assert byol_loss(3 * p1, 0.5 * p2, 7 * z1, 2 * z2).item() == pytest.approx(
        loss.item(), rel=1e-5
    )
    assert byol_loss(p1, p2, p2, p1).item() == pytest.approx(0.0, abs=1e-5)  # aligned
    assert byol_loss(p1, p2, -p2, -p1).item() == pytest.approx(8.0, abs=1e-5)  # opposite: max


def test_gradient_orthogonal_to_p_and_none_to_target() -> None:
    g = torch.Generator().manual_seed(1)
    p = torch.randn(8, 16, generator=g, requires_grad=True)
    z = torch.randn(8, 16, generator=g, requires_grad=True)
    regression_loss(p, z).sum().backward()
    assert p.grad is not None and p.grad.abs().sum() > 0
    assert torch.allclose((p.grad * p).sum(1), torch.zeros(8), atol=1e-6)
    assert z.grad is None  # stop-gradient on the target side


def test_independent_gaussians_give_two() -> None:
    g = torch.Generator().manual_seed(2)
    p, z = torch.randn(4096, 256, generator=g), torch.randn(4096, 256, generator=g)
    assert regression_loss(p, z).mean().item() == pytest.approx(2.0, abs=0.01)


def test_tau_schedule_values() -> None:
    expected = {0: 0.996, 25: 0.99658579, 50: 0.998, 75: 0.99941421, 100: 1.0}
    for k, tau in expected.items():
        assert cosine_tau(k, 100, 0.996) == pytest.approx(tau, abs=1e-8)
    assert cosine_tau(150, 100, 0.996) == 1.0  # clipped after the end


def test_ema_moves_target_by_expected_amount() -> None:
    torch.manual_seed(0)
    online, target = nn.Linear(4, 3), nn.Linear(4, 3)
    before = [p.clone() for p in target.parameters()]
    ema_update(target, online, 0.9)
    for b, t, o in zip(before, target.parameters(), online.parameters(), strict=True):
        assert torch.allclose(t, 0.9 * b + 0.1 * o, atol=1e-7)
        assert torch.allclose(t - b, 0.1 * (o - b), atol=1e-7)  # moved (1-τ) of the gap


def test_mlp_shape_and_layout() -> None:
    mlp = MLP(32, 64, 16)
    kinds = [type(m).__name__ for m in mlp]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear"]  # output not normalised
    assert mlp(torch.randn(5, 32)).shape == (5, 16)


def _encoder() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 8))


def test_standalone_target_gets_no_gradient_and_follows_schedule() -> None:
    torch.manual_seed(0)
    model = BYOL(_encoder(), 8, hidden_dim=16, proj_dim=4, tau_base=0.9)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    x1, x2 = torch.randn(6, 3, 2, 2), torch.randn(6, 3, 2, 2)
    out = model(x1, x2)
    out["loss"].backward()
    assert all(p.grad is None for p in model.target_encoder.parameters())
    assert all(p.grad is None for p in model.target_projector.parameters())
    assert model.online_encoder[1].weight.grad is not None
    before = model.target_encoder[1].weight.clone()
    opt.step()
    online = model.online_encoder[1].weight.detach().clone()
    tau = model.update_target(total_steps=10)
    assert tau == pytest.approx(0.9)  # τ(0) = τ_base
    assert torch.allclose(model.target_encoder[1].weight, 0.9 * before + 0.1 * online, atol=1e-7)
    assert int(model.step) == 1


def _head_inputs(b: int = 6, mask: torch.Tensor | None = None) -> tuple[HeadInputs, nn.Module]:
    enc = nn.Linear(3 * 2 * 4 * 4, 8)

    class Wrap(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = enc

        def forward(self, x: torch.Tensor) -> EncoderOutput:
            return EncoderOutput(pyramid=[], embedding=self.net(x.flatten(1)))

    online = Wrap()
    views = {("rgb", v): torch.randn(b, 3, 2, 4, 4) for v in ("byol1", "byol2")}
    feats = {k: online(x) for k, x in views.items()}
    masks = {"rgb": mask} if mask is not None else {}
    return HeadInputs(features=feats, views=views, mask=masks), online


def test_head_registered_and_declares_views() -> None:
    assert TASKS.get("byol") is BYOLHead
    assert BYOLHead.views == ("byol1", "byol2")
    assert BYOLHead.supports(("rgb",)) and not BYOLHead.supports(("audio",))
    assert BYOLHead.input_views(TermKey.parse("rgb/byol")) == [("rgb", "byol1"), ("rgb", "byol2")]


def test_head_loss_ema_and_state() -> None:
    torch.manual_seed(0)
    spec = {"rgb": FeatureSpec("rgb", 8, (), (3, 2, 4, 4))}
    head = BYOLHead.build(TermKey.parse("rgb/byol"), spec, {"hidden_dim": 16, "proj_dim": 4})
    inputs, online = _head_inputs()
    with pytest.raises(RuntimeError, match="bind_encoders"):
        head(inputs)
    head.bind_encoders({"rgb": online})
    out = head(inputs)
    # At bind time the target is a copy of the online encoder and projector, so the
    # targets equal the online projections: the loss is 2 - 2cos of each prediction
    # with the *other* view's projection, both orders summed, mean over the batch.
    with torch.no_grad():
        e1, e2 = (inputs.features[("rgb", v)].embedding for v in ("byol1", "byol2"))
        z1, z2 = head.projector(e1), head.projector(e2)
        p1, p2 = head.predictor(z1), head.predictor(z2)
        cos = torch.nn.functional.cosine_similarity
        want = ((2 - 2 * cos(p1, z2)) + (2 - 2 * cos(p2, z1))).mean()
        swapped = ((2 - 2 * cos(p1, z1)) + (2 - 2 * cos(p2, z2))).mean()
    assert out["loss"].item() == pytest.approx(want.item(), rel=1e-5)
    assert abs(want.item() - swapped.item()) > 1e-3  # the pairing is what is checked
    assert math.isfinite(out["collapse_std"].item())
    out["loss"].backward()
    assert online.net.weight.grad is not None  # through the features
    assert head.target_encoder is not None
    assert all(p.grad is None for p in head.target_encoder.parameters())
    # the online encoder is not a submodule (no duplicate weights); the target is
    keys = head.state_dict().keys()
    assert any(k.startswith("target_encoder.") for k in keys) and "step" in keys
    assert not any(k.startswith("_online") for k in keys)
    with torch.no_grad():
        online.net.weight.add_(1.0)
    before = head.target_encoder.net.weight.clone()
    head.after_step(0, 100)
    tau = cosine_tau(0, 100, 0.996)
    assert torch.allclose(
        head.target_encoder.net.weight, tau * before + (1 - tau) * online.net.weight, atol=1e-6
    )
    assert int(head.step) == 1


def test_head_masks_missing_rows() -> None:
    torch.manual_seed(0)
    spec = {"rgb": FeatureSpec("rgb", 8, (), (3, 2, 4, 4))}
    head = BYOLHead.build(TermKey.parse("rgb/byol"), spec, {"hidden_dim": 16, "proj_dim": 4})
    mask = torch.tensor([True, True, True, False, False, False])
    inputs, online = _head_inputs(mask=mask)
    head.bind_encoders({"rgb": online})
    head.eval()  # BN with running stats: rows are independent
    full = head(inputs)["loss"]
    sub = HeadInputs(
        features={k: EncoderOutput([], v.embedding[:3]) for k, v in inputs.features.items()},
        views={k: v[:3] for k, v in inputs.views.items()},
    )
    assert head(sub)["loss"].item() == pytest.approx(full.item(), rel=1e-6)
    none = torch.zeros(6, dtype=torch.bool)
    inputs_none, _ = _head_inputs(mask=none)
    assert head(inputs_none)["loss"].item() == 0.0
