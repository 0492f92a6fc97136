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
from elo.model.network import ELoModel, embed
from elo.model.objective import Weights, enumerate_terms
from elo.model.terms import TermKey
from elo.model.views import crop_time
from elo.tasks.temporal_order import order_view

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
    # each term divided by its scale (objective.normalize, elo/model/network.py)
    scale = model.term_scales()
    assert all(
        torch.allclose(model.loss_scale[i], out.raw[str(t)].detach())
        for i, t in enumerate(model.active)
    )
    expected = sum(0.5 * out.raw[k] / scale[k] for k in on)
    assert torch.allclose(out.total, expected)
    for k in on:
        assert torch.allclose(out.weighted[k], 0.5 * out.raw[k] / scale[k])


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
    from elo.evaluation.evaluate import PixelStatsEncoder

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


# -- one scale for all terms (objective.normalize) -------------------------------------
@pytest.fixture()
def scaled_tasks() -> Any:
    """Two copies of a reconstruction-like loss whose raw scales differ 1000x."""
    from dataclasses import dataclass

    from elo.model.heads import TASKS, TaskHead

    def make(name: str, factor: float) -> type[TaskHead]:
        class Scaled(TaskHead):
            arity = "one"

            @dataclass
            class Config:
                pass

            def __init__(self, term: TermKey, specs: Any, config: Any) -> None:
                super().__init__(term, specs, config)
                self.lin = torch.nn.Linear(specs[term.modalities[0]].embed_dim, 1)

            offset = 0.0

            def forward(self, inputs: Any) -> dict[str, torch.Tensor]:
                emb = inputs.features[(self.term.modalities[0], "base")].embedding
                return {"loss": factor * (self.lin(emb) - 1.0).pow(2).mean() + self.offset}

        Scaled.name = name
        return Scaled

    names = {"zz_big": 1000.0, "zz_small": 1.0, "zz_offset": 1.0}
    for n, f in names.items():
        TASKS.add(n, make(n, f))
    TASKS.get("zz_offset").offset = 100.0  # type: ignore[attr-defined]  # L + 100: flat
    yield names
    for n in names:
        TASKS.remove(n)


def _encoder_grad_norm(model: ELoModel, batch: dict[str, Any], key: str) -> float:
    model.zero_grad()
    out = model(batch, step=0)
    out.weighted[key].backward()
    grads = [p.grad.flatten() for p in model.encoders["rgb"].parameters() if p.grad is not None]
    return float(torch.cat(grads).norm())


@pytest.mark.parametrize("mode", ["grad", "ema", "none"])
def test_terms_whose_scales_differ_1000x_get_gradients_of_one_order(
    mode: str, scaled_tasks: dict[str, float], batch: dict[str, Any]
) -> None:
    """With ``objective.normalize: ema`` (default) each term is divided by a running
    mean of its own |loss|: the same loss at 1000x the scale reaches the RGB encoder
    with the same gradient norm (ratio 1 up to float error); raw sums keep the 1000x."""
    cfg = tiny_cfg()
    cfg["objective"].update({"modalities": MODS, "tasks": "all", "normalize": mode})
    terms = [TermKey.parse("rgb/zz_big"), TermKey.parse("rgb/zz_small")]
    torch.manual_seed(0)
    model = ELoModel(cfg, Weights(terms, {str(t): 1.0 for t in terms}))
    big = model.heads["rgb/zz_big"]
    model.heads["rgb/zz_small"].load_state_dict(big.state_dict())  # same loss, 1000x apart
    model.train()
    ratio = _encoder_grad_norm(model, batch, "rgb/zz_big") / _encoder_grad_norm(
        model, batch, "rgb/zz_small"
    )
    if mode in ("grad", "ema"):
        assert 0.99 < ratio < 1.01, ratio
        out = model(batch, step=1)
        if mode == "ema":  # values on one scale: λ=1 terms near 1
            assert all(0.5 < float(v.detach()) < 2 for v in out.weighted.values())
        raw = {k: float(v.detach()) for k, v in out.raw.items()}
        assert raw["rgb/zz_big"] > 100 * raw["rgb/zz_small"]
    else:
        assert 990 < ratio < 1010, ratio


def test_grad_mode_equalises_gradient_norms_that_value_scaling_cannot(
    scaled_tasks: dict[str, float], batch: dict[str, Any]
) -> None:
    """``zz_offset`` is the same loss plus 100: its value is ~100x larger but its
    gradient is not, so dividing by the value (``ema``) leaves it ~100x weaker; the
    default ``grad`` calibrates the gradient norm per unit loss at the first step and
    both reach the encoder with the same norm."""
    cfg = tiny_cfg()
    terms = [TermKey.parse("rgb/zz_small"), TermKey.parse("rgb/zz_offset")]
    ratios = {}
    for mode in ("grad", "ema"):
        cfg["objective"].update({"modalities": MODS, "tasks": "all", "normalize": mode})
        torch.manual_seed(0)
        model = ELoModel(cfg, Weights(terms, {str(t): 1.0 for t in terms}))
        model.heads["rgb/zz_offset"].load_state_dict(model.heads["rgb/zz_small"].state_dict())
        model.train()
        ratios[mode] = _encoder_grad_norm(model, batch, "rgb/zz_small") / _encoder_grad_norm(
            model, batch, "rgb/zz_offset"
        )
    assert 0.99 < ratios["grad"] < 1.01, ratios
    assert ratios["ema"] > 20, ratios


def test_loss_scale_is_a_running_mean_kept_in_the_state_dict(
    scaled_tasks: dict[str, float], batch: dict[str, Any]
) -> None:
    cfg = tiny_cfg()
    cfg["objective"].update({"modalities": MODS, "tasks": "all", "norm_momentum": 0.5})
    term = TermKey.parse("rgb/zz_small")
    model = ELoModel(cfg, Weights([term], {str(term): 1.0}))
    model.train()
    first = float(model(batch, step=0).raw[str(term)])
    assert float(model.loss_scale[0]) == pytest.approx(first)  # starts at the first value
    second = float(model(batch, step=1).raw[str(term)])
    assert float(model.loss_scale[0]) == pytest.approx(0.5 * first + 0.5 * second)
    model.eval()
    model(batch, step=2)  # evaluation does not move it
    assert float(model.loss_scale[0]) == pytest.approx(0.5 * first + 0.5 * second)
    assert {"loss_scale", "loss_gain"} <= set(model.state_dict())


def test_bad_normalize_option_names_the_key() -> None:
    from elo.errors import ConfigError

    cfg = tiny_cfg()
    cfg["objective"].update({"modalities": MODS, "tasks": "all", "normalize": "gradnorm"})
    term = TermKey.parse("rgb/reconstruction")
    with pytest.raises(ConfigError, match="objective.normalize"):
        ELoModel(cfg, Weights([term], {str(term): 1.0}))


# -- train-time random windows and crops -----------------------------------------------
def test_longer_larger_inputs_are_cut_at_random_in_training_at_the_centre_in_eval() -> None:
    from elo.model.views import centre_crop

    cfg = tiny_cfg()  # the model sees 8 frames of 32x32
    term = TermKey.parse("rgb/reconstruction")
    model = ELoModel(cfg, Weights([term], {str(term): 1.0}), seed=3)
    b = 6
    t = torch.arange(16, dtype=torch.float32)
    rgb = t.view(1, 1, 16, 1, 1).expand(b, 3, 16, 40, 40).clone()  # value = frame index
    rgb += torch.arange(40.0).view(1, 1, 1, 40, 1) * 100  # + 100 * row
    flow = rgb[:, :2, :15].clone()
    audio = torch.arange(201.0).view(1, 1, 1, 201).expand(b, 1, 40, 201).clone()
    batch = {"rgb": rgb, "flow": flow, "audio": audio}
    model.train()
    cut = model.crop_inputs(batch, step=5)
    assert cut["rgb"].shape == (b, 3, 8, 32, 32) and cut["flow"].shape == (b, 2, 7, 32, 32)
    assert cut["audio"].shape == (b, 1, 40, 101)
    t0 = cut["rgb"][:, 0, 0, 0, 0] % 100  # first frame index per clip
    y0 = cut["rgb"][:, 0, 0, 0, 0] // 100  # first row per clip
    assert len(set(t0.tolist())) > 1 and len(set(y0.tolist())) > 1  # random per clip
    assert torch.equal(cut["flow"][:, 0, 0, 0, 0], cut["rgb"][:, 0, 0, 0, 0])  # same window
    a0 = cut["audio"][:, 0, 0, 0]  # audio window starts at the same fraction of the clip
    assert torch.allclose(a0 / 100, t0 / 8, atol=0.07)  # rounding: half a frame
    again = model.crop_inputs(batch, step=5)
    assert torch.equal(again["rgb"], cut["rgb"])  # seeded by step: resumable
    assert not torch.equal(model.crop_inputs(batch, step=6)["rgb"], cut["rgb"])
    model.eval()
    centre = model.crop_inputs(batch, step=5)["rgb"]
    assert torch.equal(centre, centre_crop(rgb, (3, 8, 32, 32)))
    assert centre[0, 0, 0, 0, 0] == 4 + 100 * 4  # frames 4..11, rows 4..35


# -- flow scaled by the data -------------------------------------------------------------
@pytest.mark.parametrize("key", ["flow/reconstruction", "flow/future"])
def test_flow_targets_are_not_solved_by_predicting_zeros(key: str, batch: dict[str, Any]) -> None:
    """Flow is divided by its RMS over the cached clips (modalities/flow.py), so
    predicting zeros costs ~1 (~2e-4 under a fixed 8-px bound instead), and a head
    trained for 40 steps on these 8 clips beats that clearly (measured: 0.17 and 0.15
    of the zero-prediction loss for reconstruction and future; bound 0.8)."""
    from test_tasks import fit

    flow = batch["flow"]
    zero_loss = float(flow.pow(2).mean())  # L2 to a prediction of 0
    assert 0.3 < zero_loss < 3, zero_loss
    model, _ = fit(TermKey.parse(key), batch, 40, vary_views=False)
    model.eval()
    with torch.no_grad():
        trained = float(model(batch, step=0).raw[key])
    target = flow if key == "flow/reconstruction" else flow[:, :, flow.shape[2] // 2 :]
    zero_loss = float(target.pow(2).mean())  # the future: the second half
    assert trained < 0.8 * zero_loss, (trained, zero_loss)
