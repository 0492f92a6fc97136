"""One member of a population-based search (search/pbt.py): a Ray Tune function
trainable that trains its λ, one interval at a time, from its Tune checkpoint.

Each call of :func:`member_trial` starts from ``tune.get_checkpoint()`` -- the
member's own state at the end of its last interval, or, right after an exploit, the
state of the member it copied (model, optimizer, learning-rate schedule, step and
random state) -- or, for a new member, from the warm-start trunk
(search/warmstart.py). It sets its λ from its Tune config, trains up to the next
``interval`` boundary with the trainer's own steps (``elo.train.trainer.start_run`` /
``train_step``) on the train split without the held-out slice, scores the label-free
fitness a search trial uses on the held-out clips (``search.trainable._score``), and
reports both with ``tune.report(metrics, checkpoint=...)``.

The checkpoint names the member and interval that wrote it, so the next report says
whose state it started from (``parent_member``, ``parent_interval``: the lineage), and
each report carries digests of the model and optimizer tensors at its start and end:
an exploit copied exactly when the start digests equal the source's end digests.

Every member builds the heads of every term (λ = 0.5 everywhere, as the trunk): all
members have the same tensors, so any can copy any other. A rejected interval (a
non-finite loss or embeddings, collapsed embeddings, an error) reports the worst
fitness and ``rejected``; a member left with such a state trains no more and keeps
reporting it until it copies a healthy member (search/pbt_scheduler.py).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from elo.search.strategies import WORST_FITNESS
from elo.search.trainable import TrialContext

CHECKPOINT = "member.pt"


def member_index(trial_id: str) -> int:
    """The member of a trial: Ray Tune numbers a run's trials ``<prefix>_00000``, ...
    in creation order, and a trial keeps its id when it copies another."""
    return int(trial_id.rsplit("_", 1)[-1])


def member_dirname(trial: Any) -> str:
    """Ray Tune's folder of a member's trial (``trial_dirname_creator``): ``member-<m>-<id>``
    (Tune's default name lists every λ of the first config)."""
    return f"member-{member_index(trial.trial_id)}-{trial.trial_id}"


def digest(tensors: Mapping[str, Any]) -> str:
    """SHA-256 (16 hex digits) over named tensors, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def state_digests(run: Any) -> dict[str, str]:
    """Digests of a run's model parameters and buffers and its optimizer state."""
    import torch

    opt = {
        f"{pid}/{k}": v
        for pid, st in run.optimizer.state_dict()["state"].items()
        for k, v in st.items()
        if isinstance(v, torch.Tensor)
    }
    return {"model": digest(run.model.state_dict()), "optimizer": digest(opt)}


def member_intervals(
    ctx: TrialContext,
    lams: list[float],
    member: int,
    state: Mapping[str, Any] | None,
    interval: int,
) -> Iterator[dict[str, Any]]:
    """Train member ``member`` with λ ``lams`` from ``state`` (a checkpoint, or None:
    the trunk) and yield, at each interval boundary, its report: ``metrics`` for Tune
    and ``state``, the checkpoint to save with them."""
    import torch

    from elo.train.loop import rng_state

    torch.set_num_threads(max(1, int(ctx.threads)))
    total = int(ctx.steps)
    step = int(state["step"]) if state else 0
    k = int(state["interval"]) + 1 if state else 1
    parent = (int(state["member"]), int(state["interval"])) if state else (-1, 0)
    if state and state["rejected"]:  # a failed member that copied nobody: no training
        while step < total:
            step = min(step + interval, total)
            yield _rejected(state, member, k, step, parent, lams, str(state["rejected"]))
            parent, k = (member, k), k + 1
        return
    run, batches, params = _resume(ctx, lams, state, step)
    while step < total:
        start = state_digests(run)
        end = min(step + interval, total)
        why, error, value, metrics, snapshot = _interval(ctx, run, batches, params, step, end)
        if why:
            snapshot = _snapshot(run, rng_state())
        loss = float((run.history[-1] if run.history else {}).get("loss", math.nan))
        if math.isfinite(loss):
            metrics["final_loss"] = loss
        rep = _report(member, k, end, parent, lams, WORST_FITNESS if why else value, why)
        rep["metrics"].update(metrics, error_msg=error[:500])
        rep["metrics"].update({f"digest_start_{n}": d for n, d in start.items()})
        rep["metrics"].update({f"digest_end_{n}": d for n, d in state_digests(run).items()})
        st = {**snapshot, "step": end, "member": member, "interval": k, "rejected": why}
        rep["state"] = st
        yield rep
        if why:  # nothing healthy to go on with: report it until copied over
            yield from member_intervals(ctx, lams, member, st, interval)
            return
        step, parent, k = end, (member, k), k + 1


def _resume(
    ctx: TrialContext, lams: list[float], state: Mapping[str, Any] | None, step: int
) -> tuple[Any, Iterator[Any], list[Any]]:
    """The member's run (model, optimizer, schedule, random state) from ``state`` or the
    trunk, with λ ``lams``; its batches from ``step`` on and its trained parameters."""
    from elo.model.objective import Weights, terms_from_config
    from elo.search.warmstart import init_from_trunk, training_loader, uniform_weights
    from elo.train.batches import batch_stream
    from elo.train.loop import set_rng_state
    from elo.train.trainer import start_run

    terms = terms_from_config(ctx.cfg)
    union = Weights(terms, uniform_weights(ctx.cfg))  # every head, as the trunk
    run = start_run(ctx.cfg, union, int(ctx.steps), None, ctx.seed, ctx.device, False)
    if state:
        run.model.load_state_dict(state["model"])
        run.optimizer.load_state_dict(state["optimizer"])
        run.scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
    elif ctx.trunk is not None:
        init_from_trunk(run.model, ctx.trunk)
    run.model.weights = Weights(terms, dict(zip(map(str, terms), lams, strict=True)))
    modalities = sorted({m for m, _ in run.model.read_views})
    loader = training_loader(ctx, union)
    batches = batch_stream(ctx.cfg, ctx.data_root, modalities, run.t, ctx.seed, step, loader)
    return run, batches, [p for p in run.model.parameters() if p.requires_grad]


def _interval(
    ctx: TrialContext, run: Any, batches: Iterator[Any], params: list[Any], step: int, end: int
) -> tuple[str, str, float, dict[str, Any], dict[str, Any]]:
    """Train steps ``step`` to ``end`` and score the fitness: why the interval is
    rejected (``""``: it is not), the error line, the fitness, metrics, and the state
    after training (empty when training failed)."""
    from elo.search.fitness.base import NonFiniteEmbeddings
    from elo.train.batches import to_device
    from elo.train.loop import rng_state, set_rng_state
    from elo.train.trainer import NonFiniteLossError, train_step

    t0 = time.perf_counter()
    metrics: dict[str, Any] = {}
    snapshot: dict[str, Any] = {}
    try:
        run.model.train()
        for s in range(step, end):
            batch = to_device(next(batches), ctx.device)
            run.history.append(train_step(run, params, batch, s))
        metrics["train_seconds"] = time.perf_counter() - t0
        snapshot = _snapshot(run, rng_state())
        rng = rng_state()  # scoring reseeds; training goes on as if it had not
        value, scored, why = _scored(ctx, run.model)
        set_rng_state(rng)
        metrics.update(scored)
        return why, "", value, metrics, snapshot
    except (NonFiniteLossError, NonFiniteEmbeddings) as exc:
        return "nonfinite", str(exc).splitlines()[0], WORST_FITNESS, metrics, snapshot
    except MemoryError:
        raise
    except Exception as exc:  # the member's own failure: rejected, never copied
        error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        return "error", error, WORST_FITNESS, metrics, snapshot


def _snapshot(run: Any, rng: Any) -> dict[str, Any]:
    """What a checkpoint holds of a run besides its step and names."""
    return {
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "rng": rng,
    }


def _scored(ctx: TrialContext, model: Any) -> tuple[float, dict[str, Any], str]:
    """The fitness a search trial computes (search/trainable.py), its diagnostics and
    why it is rejected (search/fidelity.py), ``""`` when it is not."""
    from elo.search.fidelity import rejection
    from elo.search.trainable import _score

    scored, n_clips, std = _score(ctx, ctx.fitness, model)
    value = float(scored.value)
    why = rejection(value, std, ctx.collapse_std) or ""
    out: dict[str, Any] = {"heldout_clips": n_clips}
    if math.isfinite(std):
        out["embedding_std"] = std
    out.update({f"fitness_{k}": v for k, v in scored.details.items() if _scalar(v)})
    out["details"] = {k: v for k, v in scored.details.items() if isinstance(v, list)}
    return value, out, why


def _scalar(v: Any) -> bool:
    ok = isinstance(v, int | float | str | bool)
    return ok and not (isinstance(v, float) and not math.isfinite(v))


def _report(
    member: int,
    k: int,
    step: int,
    parent: tuple[int, int],
    lams: list[float],
    fitness: float,
    rejected: str,
) -> dict[str, Any]:
    return {
        "metrics": {
            "fitness": float(fitness),
            "step": int(step),
            "interval": int(k),
            "member": int(member),
            "parent_member": int(parent[0]),
            "parent_interval": int(parent[1]),
            "rejected": rejected,
            "lam": [float(v) for v in lams],
        }
    }


def _rejected(
    state: Mapping[str, Any],
    member: int,
    k: int,
    step: int,
    parent: tuple[int, int],
    lams: list[float],
    why: str,
) -> dict[str, Any]:
    rep = _report(member, k, step, parent, lams, WORST_FITNESS, why)
    rep["state"] = {**state, "step": step, "member": member, "interval": k}
    return rep


def member_trial(config: dict[str, Any], ctx: TrialContext, interval: int) -> None:
    """The Ray Tune function trainable (``tune.with_parameters(member_trial, ...)``)."""
    import gc
    import tempfile

    from ray import tune

    from elo.model.objective import terms_from_config
    from elo.search.memory import release, reset_peak
    from elo.search.pbt_settings import from_config
    from elo.search.trainable import _worker_metrics
    from elo.train.loop import load_state, save_state

    t0 = time.perf_counter()
    reset_peak()
    member = member_index(tune.get_context().get_trial_id())
    lams = from_config(config, len(terms_from_config(ctx.cfg)))
    checkpoint = tune.get_checkpoint()
    state = None
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            state = load_state(Path(d) / CHECKPOINT)
    for rep in member_intervals(ctx, lams, member, state, interval):
        metrics = {**rep["metrics"], "seconds": time.perf_counter() - t0}
        with tempfile.TemporaryDirectory(prefix="elo-pbt-") as d:
            save_state(Path(d) / CHECKPOINT, rep.pop("state"))
            del rep
            gc.collect()  # the worker is reused: hand back what this interval allocated
            release()
            metrics.update(_worker_metrics())
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
        t0 = time.perf_counter()
