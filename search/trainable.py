"""One search trial: train a candidate λ for a few proxy steps, score it on held-out clips.

ELo (Piergiovanni, Angelova & Ryoo, CVPR 2020, §3.3) scores each candidate loss by a
short proxy training run followed by an unsupervised fitness (Zipf) of the RGB
encoder's embeddings of held-out clips. :func:`evaluate` does exactly that and is
plain Python; :func:`trial` wraps it for Ray Tune (``tune.report``). The fitness is
chosen by name (``zipf`` | ``weak`` | ``xmodal`` | ``combined`` | ``rankme`` |
``alphareq`` | any kind registered in :data:`search.fitness.FITNESSES`), from the
``fitness`` config section; the held-out clips' labels and, for the cross-modal kinds,
their reference modalities are passed as context.

The held-out clips are a slice of the *train* split that no candidate trains on
(``search.heldout_split: train``, ``search.heldout_fraction``), never the test split,
and the RGB encoder embeds them with BatchNorm statistics recalibrated on them
(``search.heldout_bn``); see :mod:`search.fitness.data`.

A fitness kind that scores λ itself (``scores_weights``, search/fitness/base.py) trains
nothing: ``synthetic`` is such a stand-in with a known optimum, for measuring the
scheduler's own overhead (fitness = −‖λ − λ*‖² with λ* from
:func:`search.fitness.synthetic.synthetic_target`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from elo.search.settings import FitnessSettings, SearchSettings

#: held-out clips cached per worker process: (root, split, modalities) -> tensors
_HELDOUT: dict[tuple[str, str, tuple[str, ...]], dict[str, Any]] = {}


@dataclass
class TrialContext:
    """What every trial of one search shares (sent once to the Ray workers); built from
    the search's settings by :meth:`from_settings`."""

    cfg: dict[str, Any]
    data_root: str | None
    steps: int
    #: the experiment seed, where the trials run and with how many torch threads
    seed: int
    device: str
    threads: int
    #: the parsed ``fitness`` section (search/settings.py)
    fitness: FitnessSettings
    #: held-out clips of the fitness: split, fraction of the train videos (split
    #: "train"), and their BatchNorm statistics (recalibrate | train | eval)
    heldout_split: str
    heldout_fraction: float
    heldout_bn: str
    #: step counts scored (search.rungs; None: one score after ``steps``, the paper)
    rungs: tuple[int, ...] | None
    #: ASHA's halving rate (search.reduction_factor) and the collapse threshold
    reduction_factor: int
    collapse_std: float
    #: the warm-start trunk's state dict (search/warmstart.py), None: cold start
    trunk: dict[str, Any] | None = None
    #: search.paired: every candidate starts from one initial model (search/warmstart.py)
    paired: bool = False

    def __post_init__(self) -> None:
        from elo.search.settings import check_heldout_bn, check_heldout_split

        check_heldout_split(self.heldout_split)
        check_heldout_bn(self.heldout_bn)

    @classmethod
    def from_settings(
        cls,
        cfg: dict[str, Any],
        settings: SearchSettings,
        data_root: str,
        *,
        fitness: FitnessSettings | None = None,
    ) -> TrialContext:
        """The context of every trial of a search with these settings; ``cfg`` is the
        resolved config (its ``train.steps`` when ``search.steps`` is unset, its seed)."""
        from elo.search.fidelity import active_rungs, proxy_steps
        from elo.search.settings import FitnessSettings

        fitness = fitness if fitness is not None else FitnessSettings.from_config(cfg)
        steps = proxy_steps(cfg, settings)
        rungs = active_rungs(fitness, settings, steps)
        return cls(
            cfg=cfg,
            data_root=data_root,
            steps=steps,
            seed=int(cfg["seed"]),
            device="cuda" if settings.gpus_per_trial > 0 else "cpu",
            threads=settings.cpus_per_trial,
            fitness=fitness,
            heldout_split=settings.heldout_split,
            heldout_fraction=settings.heldout_fraction,
            heldout_bn=settings.heldout_bn,
            rungs=None if rungs is None else tuple(rungs),
            reduction_factor=settings.reduction_factor,
            collapse_std=settings.collapse_std,
            paired=settings.paired,
        )


def _heldout(ctx: TrialContext, extra: Sequence[str] = ()) -> dict[str, Any]:
    """Held-out clips (cached): ``rgb`` N,3,T,H,W, ``labels`` N, and each ``extra``
    modality's tensors for the same N clips (clips without RGB are dropped), cut to the
    model's input shape (:func:`search.fitness.data.heldout_clips`)."""
    from elo.search.fitness.data import heldout_clips

    mods = ("rgb", *sorted(set(extra) - {"rgb"}))
    where = f"{ctx.heldout_split}:{ctx.heldout_fraction}:{ctx.cfg['data']['clip']}"
    key = (str(ctx.data_root), where, mods)
    if key not in _HELDOUT:
        _HELDOUT[key] = heldout_clips(
            ctx.cfg,
            str(ctx.data_root),
            split=ctx.heldout_split,
            fraction=ctx.heldout_fraction,
            modalities=mods,
        )
    return _HELDOUT[key]


def _training_loader(ctx: TrialContext, weights: Any) -> Any:
    """The train split without the held-out slice (search/warmstart.py)."""
    from elo.search.warmstart import training_loader

    return training_loader(ctx, weights)


def evaluate(
    ctx: TrialContext, weights: Mapping[str, float], *, generation: int = 0, index: int = 0
) -> dict[str, Any]:
    """Train ``weights`` for ``ctx.steps`` and score it; returns the trial's report."""
    t0 = time.perf_counter()
    if not ctx.fitness.trains:
        stand_in = _weight_scorer(ctx)
        value = stand_in.score_weights(weights, key=(ctx.seed, generation, index))[-1]
        return {"fitness": value, "seconds": time.perf_counter() - t0, "metrics": {}}

    import torch

    from elo.model.objective import Weights, terms_from_config
    from elo.train.trainer import train_model

    torch.set_num_threads(max(1, int(ctx.threads)))
    w = Weights(terms_from_config(ctx.cfg), dict(weights))
    if ctx.trunk is not None or ctx.paired:  # the candidate starts from the trunk / reference
        from elo.search.warmstart import staged_training

        stages = staged_training(ctx, w, [ctx.steps], loader=_training_loader(ctx, w))
        ((_, model, history),) = list(stages)
    else:
        result = train_model(
            ctx.cfg,
            w,
            data_root=ctx.data_root,
            steps=ctx.steps,
            seed=ctx.seed,
            device=ctx.device,
            progress=False,
            loader=_training_loader(ctx, w),
        )
        model, history = result.model, result.history
    t_train = time.perf_counter() - t0
    scored, n_clips, _ = _score(ctx, ctx.fitness, model)
    last = history[-1] if history else {}
    metrics: dict[str, Any] = {
        "train_seconds": t_train,
        "final_loss": float(last.get("loss", math.nan)),
        "heldout_clips": n_clips,
    }
    for k, v in scored.details.items():
        if isinstance(v, int | float | str | bool):
            metrics[f"fitness_{k}"] = v
    return {
        "fitness": float(scored.value),
        "seconds": time.perf_counter() - t0,
        "metrics": {k: v for k, v in metrics.items() if not _nonfinite(v)},
        "details": {k: v for k, v in scored.details.items() if isinstance(v, list)},
    }


def evaluate_rungs(
    ctx: TrialContext, weights: Mapping[str, float], *, generation: int = 0, index: int = 0
) -> Iterator[dict[str, Any]]:
    """Train ``weights`` from ``ctx.trunk`` (or from scratch) and yield one report per
    rung of ``ctx.rungs`` (``fitness``, ``rung``, ``rung_t``, ``steps``); a rung whose
    score is non-finite or collapsed yields a report with ``rejected`` and ends the
    candidate (search/fidelity.py, docs/search.md)."""
    from elo.search.fidelity import RUNG, RUNG_TIME, rung_time

    assert ctx.rungs is not None
    t0 = time.perf_counter()
    rf = ctx.reduction_factor
    for k, (steps, rep) in enumerate(_rung_scores(ctx, weights, generation, index), start=1):
        rep.update({RUNG: k, RUNG_TIME: rung_time(k, rf), "steps": steps})
        rep.setdefault("metrics", {})["steps"] = steps  # kept in the evaluation's record
        rep["seconds"] = time.perf_counter() - t0
        yield rep
        if rep.get("rejected"):
            return


def _rung_scores(
    ctx: TrialContext, weights: Mapping[str, float], generation: int, index: int
) -> Iterator[tuple[int, dict[str, Any]]]:
    assert ctx.rungs is not None
    if not ctx.fitness.trains:
        stand_in = _weight_scorer(ctx)
        fracs = [s / ctx.rungs[-1] for s in ctx.rungs]
        values = stand_in.score_weights(weights, fractions=fracs, key=(ctx.seed, generation, index))
        for steps, value in zip(ctx.rungs, values, strict=True):
            yield steps, {"fitness": value, "metrics": {}}
        return
    for steps, reports in rung_reports(ctx, weights, {"fitness": ctx.fitness}, ctx.rungs):
        yield steps, reports["fitness"]


def rung_reports(
    ctx: TrialContext,
    weights: Mapping[str, float],
    sections: Mapping[str, FitnessSettings],
    rungs: Sequence[int],
) -> Iterator[tuple[int, dict[str, dict[str, Any]]]]:
    """Train ``weights`` as a rung trial does (from the trunk, or the paired reference)
    and at each of ``rungs`` score the model with every fitness ``sections[name]``;
    yields ``(steps, {name: report})``, each report as a trial's rung report. A search
    passes its one ``fitness`` section; benchmarks/bench_proxy.py passes several, all
    scored on the same trained model. After a non-finite loss every section gets one
    report with ``rejected: nonfinite`` and the training ends."""
    import torch

    from elo.model.objective import Weights, terms_from_config
    from elo.search.fidelity import rejection
    from elo.search.warmstart import staged_training
    from elo.train.loop import rng_state, set_rng_state
    from elo.train.trainer import NonFiniteLossError

    torch.set_num_threads(max(1, int(ctx.threads)))
    w = Weights(terms_from_config(ctx.cfg), dict(weights))
    stages = staged_training(ctx, w, rungs, loader=_training_loader(ctx, w))
    steps = 0
    try:
        for steps, model, history in stages:
            rng = rng_state()  # scoring reseeds; training goes on as if it had not
            out: dict[str, dict[str, Any]] = {}
            for name, section in sections.items():
                scored, n_clips, std = _score(ctx, section, model)
                value = float(scored.value)
                why = rejection(value, std, ctx.collapse_std)
                metrics: dict[str, Any] = {"embedding_std": std, "heldout_clips": n_clips}
                metrics["final_loss"] = float(history[-1]["loss"]) if history else math.nan
                rep: dict[str, Any] = {"fitness": value, "metrics": _finite(metrics)}
                rep["details"] = {k: v for k, v in scored.details.items() if isinstance(v, list)}
                if why:
                    rep.update(rejected=why, fitness=math.nan)
                out[name] = rep
            set_rng_state(rng)
            yield steps, out
    except NonFiniteLossError as exc:
        bad = {"fitness": math.nan, "rejected": "nonfinite", "error_msg": str(exc)}
        yield steps, {name: dict(bad) for name in sections}


def _weight_scorer(ctx: TrialContext) -> Any:
    """The trial's fitness that scores λ itself (``synthetic``; ``ctx.fitness.trains``
    is false): search/fitness/base.py."""
    return ctx.fitness.build(ctx.seed)


def _finite(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if not _nonfinite(v)}


def _score(ctx: TrialContext, fitness: FitnessSettings, model: Any) -> tuple[Any, int, float]:
    """The fitness of a trained candidate on the held-out clips (with the labels and the
    reference modalities its kind reads as context), how many clips it scored and the
    mean std of their embeddings (search/fidelity.py: collapse)."""
    from elo.rundir import seed_everything
    from elo.search.fitness.data import fitness_embed

    refs = fitness.references
    held = _heldout(ctx, refs)
    x = held["rgb"]
    seed_everything(ctx.seed)
    emb = fitness_embed(model.encoders["rgb"], x, bn=ctx.heldout_bn)  # N,D
    context: dict[str, Any] = {"labels": held["labels"]}
    for m in refs:
        context[m] = held[m]  # raw clips, for fixed reference statistics
        if m in model.encoders:  # the candidate's own encoder, if it has one
            context[f"{m}_embeddings"] = fitness_embed(
                model.encoders[m], held[m], bn=ctx.heldout_bn
            )
    from elo.search.fidelity import embedding_std

    return fitness.build(ctx.seed).score(emb, **context), len(x), embedding_std(emb)


def _nonfinite(v: Any) -> bool:
    return isinstance(v, float) and not math.isfinite(v)


def trial(config: dict[str, Any], ctx: TrialContext) -> None:
    """The Ray Tune function trainable (``tune.with_parameters(trial, ctx=...)``)."""
    import gc

    from ray import tune

    from elo.search.memory import release, reset_peak

    reset_peak()
    if ctx.rungs is not None:
        _trial_rungs(config, ctx)
        return
    report = evaluate(
        ctx,
        config["weights"],
        generation=int(config.get("generation", 0)),
        index=int(config.get("index", 0)),
    )
    # The worker process is reused for the next trial: free what this one allocated
    # (models, optimizer state, batches) and hand the heap back before measuring.
    gc.collect()
    release()
    report.setdefault("metrics", {}).update(_worker_metrics())
    tune.report(report)


def _worker_metrics() -> dict[str, Any]:
    """Which worker and node ran a trial, and its memory (search/memory.py)."""
    import os

    import ray

    from elo.search.memory import peak_mb, rss_mb

    return {
        "worker_pid": os.getpid(),
        "node_id": ray.get_runtime_context().get_node_id(),
        "worker_rss_mb": rss_mb(),
        "trial_peak_mb": peak_mb(),
    }


def _trial_rungs(config: dict[str, Any], ctx: TrialContext) -> None:
    """:func:`trial` with rungs: one ``tune.report`` per rung (ASHA may stop it after
    any of them); the worker's memory readings go with each."""
    import gc

    from ray import tune

    from elo.search.memory import release

    reports = evaluate_rungs(
        ctx,
        config["weights"],
        generation=int(config.get("generation", 0)),
        index=int(config.get("index", 0)),
    )
    for report in reports:
        gc.collect()
        release()
        report.setdefault("metrics", {}).update(_worker_metrics())
        tune.report(report)
