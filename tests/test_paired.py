"""search.paired (common random numbers): the candidates of a search see the same
batches, views, augmentations and fitness clips, and start from one initial model,
so that what differs between them is λ (search/warmstart.py, docs/search.md)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from elo.data.demo_data import make_demo

    out = tmp_path_factory.mktemp("paired") / "demo"
    return make_demo(out, clips=16, classes=4, seed=0, workers=1)


def small_cfg(root: Path) -> dict[str, Any]:
    """RGB and flow, three tasks and flow->RGB distillation: 8 terms, two encoders."""
    from elo.config import load_config

    cfg = load_config(
        "demo",
        [
            "objective.modalities=[rgb,flow]",
            "objective.tasks=[reconstruction,temporal_order,contrastive]",
            "objective.distill.levels=[3]",
            "train.batch_size=4",
        ],
    )
    cfg["data"]["root"] = str(root)
    cfg["fitness"] = fitness(kind="rankme", prepare="centre", relative=True)
    return cfg


def fitness(**keys: Any) -> dict[str, Any]:
    """A complete fitness section: configs/fitness/<kind>.yaml with ``keys`` over it."""
    from elo.search.settings import fitness_section

    return {**fitness_section(keys["kind"]), **keys}


def ctx_of(cfg: dict[str, Any], root: Path, **fields: Any) -> Any:
    """The search's trial context for ``cfg`` on ``root`` (cold start, one rung, not
    paired unless ``fields`` say otherwise)."""

    from elo.search.settings import SearchSettings
    from elo.search.trainable import TrialContext

    ctx = TrialContext.from_settings(cfg, SearchSettings.from_config(cfg), str(root))
    return replace(ctx, **{"rungs": None, "paired": False, "trunk": None, **fields})


def candidates(cfg: dict[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
    """Two λ: every term on, and a sparser one (the first two terms off, so every
    head built after them would draw other initial weights without pairing)."""
    from elo.model.objective import terms_from_config

    terms = [str(t) for t in terms_from_config(cfg)]
    a = {t: 0.3 + 0.1 * i for i, t in enumerate(terms)}
    b = {t: (0.0 if i < 2 else 0.9 - 0.1 * i) for i, t in enumerate(terms)}
    return a, b


class Recorder:
    """What one trial used: the model before its first step, every step's batch, every
    view, and the clips its fitness embedded."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import elo.search.fitness.data as fdata
        import elo.train.trainer as trainer
        from elo.model.network import ELoModel

        self.runs: list[dict[str, Any]] = []
        real_step, real_views, real_embed = trainer.train_step, ELoModel.make_views, None
        real_embed = fdata.fitness_embed

        def train_step(run: Any, params: Any, batch: Any, step: int) -> Any:
            rec = self.runs[-1]
            if step == 0:
                rec["init"] = {k: v.clone() for k, v in run.model.state_dict().items()}
            rec["batches"].append({k: v.clone() for k, v in batch.items() if hasattr(v, "clone")})
            return real_step(run, params, batch, step)

        def make_views(model: Any, batch: Any, step: int, pairs: Any) -> Any:
            views, info = real_views(model, batch, step, pairs)
            self.runs[-1]["views"].append({k: v.clone() for k, v in views.items()})
            return views, info

        def fitness_embed(encoder: Any, x: Any, **kw: Any) -> Any:
            self.runs[-1]["fitness_clips"].append(x.clone())
            return real_embed(encoder, x, **kw)

        monkeypatch.setattr(trainer, "train_step", train_step)
        monkeypatch.setattr(ELoModel, "make_views", make_views)
        monkeypatch.setattr(fdata, "fitness_embed", fitness_embed)

    def trial(self, ctx: Any, weights: dict[str, float]) -> dict[str, Any]:
        from elo.search.trainable import evaluate

        self.runs.append({"batches": [], "views": [], "fitness_clips": []})
        self.runs[-1]["report"] = evaluate(ctx, weights)
        return self.runs[-1]


def _same(x: Any, y: Any) -> bool:
    import torch

    return bool(x.shape == y.shape and torch.equal(x, y))


def test_paired_trials_see_identical_batches_views_clips_and_initial_modules(
    demo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    cfg = small_cfg(demo_root)
    a, b = candidates(cfg)
    rec = Recorder(monkeypatch)
    shared_differs = {}
    for paired in (True, False):
        ctx = ctx_of(cfg, demo_root, steps=2, seed=3, paired=paired)
        ra, rb = rec.trial(ctx, a), rec.trial(ctx, b)
        # the batches: same clips, same crops, for every modality both read
        assert len(ra["batches"]) == len(rb["batches"]) == 2
        for x, y in zip(ra["batches"], rb["batches"], strict=True):
            common = set(x) & set(y)
            assert {"rgb", "flow"} <= common
            assert all(_same(x[k], y[k]) for k in common)
        # the views and augmentations: every (modality, view) both derive is identical
        n_views = 0
        for x, y in zip(ra["views"], rb["views"], strict=True):
            for mv in set(x) & set(y):
                assert _same(x[mv], y[mv]), mv
                n_views += 1
        assert n_views >= 2
        # the fitness clips
        assert all(
            _same(x, y) for x, y in zip(ra["fitness_clips"], rb["fitness_clips"], strict=True)
        )
        # the initial weights of every module both have (b lacks two heads)
        common = [k for k in rb["init"] if k in ra["init"] and not k.startswith("loss_")]
        assert len(common) < len(ra["init"])
        differ = [k for k in common if not _same(ra["init"][k], rb["init"][k])]
        shared_differs[paired] = differ
    assert shared_differs[True] == []
    # without pairing, switching the first terms off changes the initial weights of
    # the heads built after them (and of encoders whose build order it changes): what
    # pairing removes
    assert any(k.startswith("heads.") for k in shared_differs[False])


def test_pairing_leaves_the_all_terms_candidate_unchanged(demo_root: Path) -> None:
    """The reference model is built exactly as a run with every term on builds its
    own: such a candidate trains to the same weights bit for bit, paired or not."""
    import torch

    from elo.model.objective import Weights, terms_from_config
    from elo.search.warmstart import staged_training

    cfg = small_cfg(demo_root)
    a, _ = candidates(cfg)
    w = Weights(terms_from_config(cfg), a)
    out = []
    for paired in (False, True):
        ctx = ctx_of(cfg, demo_root, steps=2, seed=1, paired=paired)
        ((_, model, _),) = list(staged_training(ctx, w, [2]))
        out.append(model.state_dict())
    assert out[0].keys() == out[1].keys()
    assert all(torch.equal(out[0][k], out[1][k]) for k in out[0])


def test_paired_candidates_continue_the_trunk_term_by_term(demo_root: Path, tmp_path: Path) -> None:
    """With a warm-start trunk, a paired candidate with some terms off takes the
    trunk's loss scales of its own terms (and does not recalibrate them); unpaired,
    their shapes differ and it starts them over."""
    import torch

    from elo.model.network import ELoModel
    from elo.model.objective import Weights, terms_from_config
    from elo.search.warmstart import ensure_trunk, init_from_trunk

    cfg = small_cfg(demo_root)
    ctx = ctx_of(cfg, demo_root, steps=2, seed=0)
    trunk = ensure_trunk(ctx, tmp_path, 2, lambda _: None)
    terms = [str(t) for t in terms_from_config(cfg)]
    assert bool(trunk["loss_gain_set"]) and trunk["loss_scale"].shape == (len(terms),)
    _, b = candidates(cfg)
    on = [i for i, t in enumerate(terms) if b[t] > 0]
    for by_term in (True, False):
        model = ELoModel(cfg, Weights(terms_from_config(cfg), b), seed=0)
        init_from_trunk(model, trunk, terms if by_term else None)
        state = model.state_dict()
        if by_term:
            for k in ("loss_scale", "loss_gain", "loss_scale_seen"):
                assert torch.equal(state[k], trunk[k][on]), k
            assert bool(state["loss_gain_set"])
        else:
            assert not bool(state["loss_gain_set"])
            assert torch.equal(state["loss_scale"], torch.ones(len(on)))


def test_one_score_trials_start_from_the_trunk_like_rung_trials(
    demo_root: Path, tmp_path: Path
) -> None:
    """evaluate() (one score, no rungs) trains from the warm-start trunk: its fitness
    and last loss equal the rung path's with one rung; its last loss is not a cold
    start's."""
    from elo.search.trainable import evaluate, evaluate_rungs
    from elo.search.warmstart import ensure_trunk

    cfg = small_cfg(demo_root)
    _, b = candidates(cfg)
    cold = ctx_of(cfg, demo_root, steps=2, seed=0)
    r_cold = evaluate(cold, b)
    warm = ctx_of(cfg, demo_root, steps=2, seed=0)
    warm.trunk = ensure_trunk(warm, tmp_path, 3, lambda _: None)
    r_warm = evaluate(warm, b)
    warm.rungs = (2,)
    (rung,) = list(evaluate_rungs(warm, b))
    assert r_warm["fitness"] == rung["fitness"]
    assert r_warm["metrics"]["final_loss"] == rung["metrics"]["final_loss"]
    assert r_warm["metrics"]["final_loss"] != r_cold["metrics"]["final_loss"]


def test_several_fitnesses_of_one_model_equal_each_trials_own(demo_root: Path) -> None:
    """rung_reports scores one trained model with several fitness sections (what
    benchmarks/bench_proxy.py compares); each equals the score of a rung trial with
    that section alone, at every rung."""
    from elo.search.trainable import evaluate_rungs, rung_reports

    cfg = small_cfg(demo_root)
    _, b = candidates(cfg)
    from elo.search.settings import FitnessSettings

    sections = {
        "zipf": fitness(kind="zipf", k=3, n_init=2),
        "rankme": fitness(kind="rankme", prepare="centre", relative=False),
    }
    ctx = ctx_of(cfg, demo_root, steps=3, seed=0, rungs=(1, 3))
    ctx.heldout_fraction = 0.5
    parsed = {n: FitnessSettings.from_config({"fitness": sec}) for n, sec in sections.items()}
    together = list(rung_reports(ctx, b, parsed, ctx.rungs))
    assert [s for s, _ in together] == [1, 3]
    for name, section in sections.items():
        alone = list(
            evaluate_rungs(replace(ctx, cfg={**cfg, "fitness": section}, fitness=parsed[name]), b)
        )
        assert [r["fitness"] for r in alone] == [reps[name]["fitness"] for _, reps in together]
        assert all(r["metrics"]["heldout_clips"] >= 4 for r in alone)
        assert alone[0]["fitness"] != alone[1]["fitness"]  # trained between the rungs
