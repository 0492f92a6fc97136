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

``synthetic`` is a stand-in with a known optimum and no training (for tests and for
measuring the scheduler's own overhead): fitness = −‖λ − λ*‖² with λ* from
:func:`search.fitness.synthetic.synthetic_target`, after sleeping ``fitness.seconds``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from elo.search.settings import SearchSettings

#: held-out clips cached per worker process: (root, split, modalities) -> tensors
_HELDOUT: dict[tuple[str, str, tuple[str, ...]], dict[str, Any]] = {}


@dataclass
class TrialContext:
    """What every trial of one search shares (sent once to the Ray workers)."""

    cfg: dict[str, Any]
    data_root: str | None
    steps: int
    seed: int = 0
    device: str = "cpu"
    threads: int = 1
    heldout_split: str = "train"
    #: (generation, index) pairs that raise on purpose (fault-injection for tests).
    fail_on: list[tuple[int, int]] = field(default_factory=list)
    #: fraction of the train videos held out for the fitness (heldout_split "train")
    heldout_fraction: float = 0.2
    #: BatchNorm statistics of the fitness embeddings: recalibrate | train | eval
    heldout_bn: str = "recalibrate"
    #: step counts scored (search.rungs; None: one score after ``steps``, the paper)
    rungs: tuple[int, ...] | None = None
    #: ASHA's halving rate (search.reduction_factor) and the collapse threshold
    reduction_factor: int = 2
    collapse_std: float = 1e-4
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
        fail_on: Sequence[tuple[int, int]] = (),
    ) -> TrialContext:
        """The context of every trial of a search with these settings; ``cfg`` is the
        resolved config (its ``train.steps`` when ``search.steps`` is unset, its seed)."""
        from elo.search.fidelity import active_rungs, proxy_steps

        gpus = settings.gpus_per_trial
        steps = proxy_steps(cfg, settings)
        rungs = active_rungs(cfg, settings, steps)
        return cls(
            cfg=cfg,
            data_root=data_root,
            steps=steps,
            rungs=None if rungs is None else tuple(rungs),
            reduction_factor=settings.reduction_factor,
            collapse_std=settings.collapse_std,
            seed=int(cfg.get("seed", 0)),
            device="cuda" if gpus > 0 else "cpu",
            threads=settings.cpus_per_trial,
            heldout_split=settings.heldout_split,
            heldout_fraction=settings.heldout_fraction,
            heldout_bn=settings.heldout_bn,
            fail_on=[(int(g), int(i)) for g, i in fail_on],
            paired=settings.paired,
        )


def reference_modalities(section: Mapping[str, Any]) -> list[str]:
    """Modalities besides RGB a fitness reads from the held-out clips (xmodal, combined
    and xpredict compare with ``fitness.references``, e.g. audio and flow)."""
    if section.get("kind") in ("xmodal", "combined", "xpredict"):
        return [str(m) for m in section.get("references", ("audio", "flow"))]
    return []


def _heldout(ctx: TrialContext, extra: Sequence[str] = ()) -> dict[str, Any]:
    """Held-out clips (cached): ``rgb`` N,3,T,H,W, ``labels`` N, and each ``extra``
    modality's tensors for the same N clips (clips without RGB are dropped), cut to the
    model's input shape (:func:`search.fitness.data.heldout_clips`)."""
    from elo.search.fitness.data import heldout_clips

    mods = ("rgb", *sorted(set(extra) - {"rgb"}))
    where = f"{ctx.heldout_split}:{ctx.heldout_fraction}:{ctx.cfg.get('data', {}).get('clip')}"
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
    if (generation, index) in {tuple(p) for p in ctx.fail_on}:
        raise RuntimeError(f"injected failure for generation {generation}, index {index}")
    section = dict(ctx.cfg.get("fitness", {}) or {})
    if section.get("kind") == "synthetic":
        from elo.search.fitness.synthetic import synthetic_fitness

        time.sleep(float(section.get("seconds", 0.0)))
        value = synthetic_fitness(weights)
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
    scored, n_clips, _ = _score(ctx, section, model)
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
    if (generation, index) in {tuple(p) for p in ctx.fail_on}:
        raise RuntimeError(f"injected failure for generation {generation}, index {index}")
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
    section = dict(ctx.cfg.get("fitness", {}) or {})
    if section.get("kind") == "synthetic":
        from elo.search.fidelity import synthetic_rungs

        fracs = [s / ctx.rungs[-1] for s in ctx.rungs]
        noise = float(section.get("rung_noise") or 0.0)
        values = synthetic_rungs(weights, fracs, noise, (ctx.seed, generation, index))
        for i, (steps, value) in enumerate(zip(ctx.rungs, values, strict=True)):
            time.sleep(float(section.get("seconds", 0.0)) * (fracs[i] - (fracs[i - 1] if i else 0)))
            yield steps, {"fitness": value, "metrics": {}}
        return
    for steps, reports in rung_reports(ctx, weights, {"fitness": section}, ctx.rungs):
        yield steps, reports["fitness"]


def rung_reports(
    ctx: TrialContext,
    weights: Mapping[str, float],
    sections: Mapping[str, Mapping[str, Any]],
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


def _finite(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if not _nonfinite(v)}


def _score(ctx: TrialContext, section: Mapping[str, Any], model: Any) -> tuple[Any, int, float]:
    """The fitness of a trained candidate on the held-out clips (with the labels and the
    reference modalities its kind reads as context), how many clips it scored and the
    mean std of their embeddings (search/fidelity.py: collapse)."""
    from elo.rundir import seed_everything
    from elo.search.fitness import build_fitness
    from elo.search.fitness.data import fitness_embed

    refs = reference_modalities(section)
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
    fitness = build_fitness(section, seed=ctx.seed)
    from elo.search.fidelity import embedding_std

    return fitness.score(emb, **context), len(x), embedding_std(emb)


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
