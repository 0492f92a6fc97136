"""ELoModel: one encoder pass per (modality, view), zero-weight terms and unneeded
encoders skipped, missing modalities masked, the weighted sum; and the views."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import test_tasks
import torch
from test_tasks import MODS, real_batch, tiny_cfg

from elo.errors import DataError
from elo.model import ELoModel, embed
from elo.objective import Weights, enumerate_terms
from elo.terms import TermKey
from elo.views import crop_time, order_view

batch = test_tasks.batch  # session fixtures: one real dataset for all model tests
clips_dir = test_tasks.clips_dir
ELO_TASKS = ["reconstruction", "future", "transfer", "temporal_order", "contrastive", "alignment"]


def all_terms() -> list[TermKey]:
    return enumerate_terms(
        MODS, ELO_TASKS, distill_teachers=["flow", "audio"], distill_levels=[2, 3]
    )


def count_encoder_calls(model: ELoModel) -> Counter[str]:
    calls: Counter[str] = Counter()
    for m, enc in model.encoders.items():
        enc.register_forward_hook(lambda *_, m=m: calls.update([m]))
    return calls


def test_each_encoder_runs_once_per_modality_and_view(batch: dict[str, Any]) -> None:
    terms = all_terms()
    model = ELoModel(tiny_cfg(), Weights.uniform(terms))
    calls = count_encoder_calls(model)
    with torch.no_grad():
        out = model(batch, step=0)
    assert set(out.raw) == {str(t) for t in terms}
    views_per_mod = Counter(m for m, _ in model.encoded_views)
    assert calls == views_per_mod
    # base, order, past + sync (first of a pair) / async (second); never one per term
    assert calls == {"rgb": 4, "flow": 5, "audio": 4}
    naive = ELoModel(tiny_cfg(), Weights.uniform(terms), share_features=False)
    naive_calls = count_encoder_calls(naive)
    with torch.no_grad():
        naive_out = naive(batch, step=0)
    assert sum(naive_calls.values()) > 2 * sum(calls.values())
    assert set(naive_out.raw) == set(out.raw)


def test_zero_weight_terms_and_unneeded_encoders_are_skipped(batch: dict[str, Any]) -> None:
    terms = all_terms()
    on = {"rgb/reconstruction", "rgb->flow/transfer"}
    weights = Weights(terms, {str(t): (0.5 if str(t) in on else 0.0) for t in terms})
    model = ELoModel(tiny_cfg(), weights)
    assert set(model.heads) == on
    assert set(model.encoders) == {"rgb"}  # flow is only a transfer target: never encoded
    calls = count_encoder_calls(model)
    no_audio = {k: v for k, v in batch.items() if k != "audio"}
    out = model(no_audio, step=0)
    assert calls == {"rgb": 1}
    assert set(out.raw) == on
    expected = sum(0.5 * out.raw[k] for k in on)
    assert torch.allclose(out.total, expected)
    for k in on:
        assert torch.allclose(out.weighted[k], 0.5 * out.raw[k])


def test_a_missing_modality_input_is_a_clear_error(batch: dict[str, Any]) -> None:
    term = TermKey.parse("flow/reconstruction")
    model = ELoModel(tiny_cfg(), Weights([term], {str(term): 1.0}))
    with pytest.raises(DataError, match="no 'flow' input"):
        model({k: v for k, v in batch.items() if k != "flow"}, step=0)


@pytest.mark.parametrize(
    "key",
    [
        "audio/reconstruction",
        "rgb->audio/transfer",
        "rgb+audio/contrastive",
        "distill/audio->rgb@2",
    ],
)
def test_rows_without_the_modality_do_not_change_the_loss(key: str, batch: dict[str, Any]) -> None:
    missing = ~batch["present"]["audio"]
    assert missing.any()
    term = TermKey.parse(key)
    torch.manual_seed(0)
    model = ELoModel(tiny_cfg(), Weights([term], {key: 1.0})).eval()  # eval: rows independent
    junk = dict(batch)
    junk["audio"] = batch["audio"].clone()
    junk["audio"][missing] = 100 * torch.randn_like(junk["audio"][missing])
    with torch.no_grad():
        a, b = model(batch).raw[key], model(junk).raw[key]
    assert torch.isfinite(a) and torch.allclose(a, b, atol=1e-5), f"{key}: {a} vs {b}"


def test_views_are_deterministic_per_step_and_paired_across_modalities(
    batch: dict[str, Any],
) -> None:
    term = TermKey.parse("rgb+audio/alignment")
    model = ELoModel(tiny_cfg(), Weights([term], {str(term): 1.0})).eval()  # no augmentation
    v1, i1 = model.make_views(batch, 5, model.read_views)
    v2, i2 = model.make_views(batch, 5, model.read_views)
    _, i3 = model.make_views(batch, 6, model.read_views)
    assert all(torch.equal(v1[k], v2[k]) for k in v1)
    assert torch.equal(i1[("rgb", "sync")]["aligned"], i1[("audio", "async")]["aligned"])
    labels = [i1[("audio", "async")]["aligned"], i3[("audio", "async")]["aligned"]]
    assert labels[0].sum() == 4 and not torch.equal(*labels)  # balanced, redrawn per step
    aligned = i1[("audio", "async")]["aligned"].bool()
    rgb, audio = batch["rgb"], batch["audio"]
    # an aligned rgb window starts where its audio window starts (in clip fractions)
    assert v1[("rgb", "sync")].shape[2] == rgb.shape[2] // 2
    assert v1[("audio", "async")].shape[3] == round(audio.shape[3] / 2)
    for i in torch.nonzero(aligned).flatten().tolist():
        starts = [
            _window_start(rgb[i], v1[("rgb", "sync")][i], 1),
            _window_start(audio[i], v1[("audio", "async")][i], 2),
        ]
        assert abs(starts[0] / rgb.shape[2] - starts[1] / audio.shape[3]) < 0.1


def _window_start(full: torch.Tensor, window: torch.Tensor, dim: int) -> int:
    n = window.shape[dim]
    for s in range(full.shape[dim] - n + 1):
        if torch.equal(full.narrow(dim, s, n), window):
            return s
    raise AssertionError("window not found in the clip")


def test_order_view_labels_and_transforms() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.arange(8.0).view(1, 1, 8, 1, 1).repeat(6, 2, 1, 2, 2)  # B,C,T,H,W; value = t
    out, info = order_view(x, modality="flow", generator=g)
    labels = info["order_label"].tolist()
    assert sorted(labels) == [0, 0, 1, 1, 2, 2] and out.shape[2] == 6
    for i, lab in enumerate(labels):
        t = out[i, 0, :, 0, 0]  # frame indices of the window, as the view arranged them
        if lab == 0:
            assert (t >= 0).all() and (torch.diff(t) == 1).all()
        elif lab == 2:  # reversed, and flow negated (backward motion)
            assert (t <= 0).all() and (torch.diff(-t) == -1).all()
        else:
            assert (t >= 0).all() and (torch.diff(t.sort().values) == 1).all()
            assert not (torch.diff(t) == 1).all() and not (torch.diff(t) == -1).all()


def test_crop_time_takes_fractional_windows() -> None:
    x = torch.arange(10.0).view(1, 1, 1, 10).repeat(2, 1, 3, 1)  # B,1,F,Tm
    out = crop_time(x, torch.tensor([0.0, 0.5]), 0.5)
    assert out[0, 0, 0].tolist() == [0, 1, 2, 3, 4] and out[1, 0, 0].tolist() == [5, 6, 7, 8, 9]


def test_embed_gives_pooled_embeddings_in_eval_mode(batch: dict[str, Any]) -> None:
    term = TermKey.parse("rgb/reconstruction")
    model = ELoModel(tiny_cfg(), Weights([term], {str(term): 1.0}))
    enc = model.encoders["rgb"].train()
    e = embed(enc, batch["rgb"], batch_size=3)
    assert e.shape == (8, 32) and enc.training
    enc.eval()
    with torch.no_grad():
        assert torch.allclose(e, enc(batch["rgb"]).embedding, atol=1e-5)


def test_embed_works_for_an_encoder_without_parameters() -> None:
    from elo.evaluate import PixelStatsEncoder

    enc = PixelStatsEncoder(in_channels=3, grid=2).train()
    assert not list(enc.parameters()) and not list(enc.buffers())
    x = torch.rand(5, 3, 4, 16, 16, generator=torch.Generator().manual_seed(0))  # B,C,T,H,W
    e = embed(enc, x, batch_size=2)
    assert e.shape == (5, enc.embed_dim) and e.device.type == "cpu" and enc.training
    assert torch.allclose(e, enc(x).embedding, atol=1e-6)
    assert embed(enc, x[:0]).shape == (0, enc.embed_dim)


def test_real_batch_with_selected_modalities(clips_dir: Any) -> None:
    b = real_batch(clips_dir, 2, ["rgb"])
    assert set(b) == {"rgb", "present", "meta"}
