"""Warm start and staged proxy training of a search (docs/search.md).

``search.warm_start: true``: before generation 0 the driver trains one shared trunk
once, with uniform λ (0.5 for every term: the CMA-ES starting mean,
:meth:`search.space.WeightSpace.centre`) for ``search.warm_start_steps`` steps, through
the trainer every trial uses (:func:`elo.train.trainer.train_model`), and stores its
state dict in the run directory (:data:`TRUNK_FILE`, written atomically, read back
with ``weights_only=True``). ``--resume`` reads that file and never trains it again.
The trials receive the trunk inside their :class:`search.trainable.TrialContext`,
which ``tune.with_parameters`` puts in Ray's object store once: every Ray node can
read it, shared file system or not.

:func:`staged_training` trains one candidate, from the trunk when given, and yields
its model at each rung (search/fidelity.py). It runs the trainer's own steps
(``elo.train.trainer.start_run`` / ``train_step`` and ``elo.train.batches.batch_stream``), so
a candidate trained without trunk to its last rung equals ``train_model`` bit for bit
(tests/test_fidelity.py checks it).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from elo.rundir import atomic_write_bytes, atomic_write_json

if TYPE_CHECKING:
    from elo.search.settings import SearchSettings

#: a search.trainable.TrialContext (not imported: trainable imports this module)
TrialContext = Any

TRUNK_FILE = "warm_start.pt"
TRUNK_INFO = "warm_start.json"


def training_loader(ctx: TrialContext, weights: Any) -> Any:
    """The train split without the held-out slice (``None``: the trainer's own loader,
    when the fitness clips come from another split)."""
    if ctx.heldout_split != "train":
        return None
    from elo.search.fitness.data import training_loader
    from elo.train.settings import TrainSettings

    t = TrainSettings.from_config(ctx.cfg)
    mods = sorted({"rgb", *(m for term in weights.active for m in term.modalities)})
    return training_loader(
        ctx.cfg,
        str(ctx.data_root),
        fraction=ctx.heldout_fraction,
        modalities=mods,
        batch_size=t.batch_size,
        seed=ctx.seed,
        workers=t.num_workers,
    )


def uniform_weights(cfg: dict[str, Any]) -> dict[str, float]:
    """λ = 0.5 for every term of ``cfg``'s objective (the trunk's loss)."""
    from elo.model.objective import terms_from_config

    return {str(t): 0.5 for t in terms_from_config(cfg)}


def trunk_steps(settings: SearchSettings, proxy_steps: int) -> int:
    return int(settings.warm_start_steps or proxy_steps)


def ensure_trunk(
    ctx: TrialContext,
    run_dir: Path,
    steps: int,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The trunk of the search in ``run_dir``: read from :data:`TRUNK_FILE` when it is
    there (a resumed search), else trained once and written there."""
    path = run_dir / TRUNK_FILE
    if path.exists():
        state = load_trunk(path)
        echo(f"warm start: reusing the trunk in {path} (not retrained)")
        return state
    import time

    import torch

    from elo.model.objective import Weights, terms_from_config
    from elo.train.trainer import train_model

    t0 = time.perf_counter()
    torch.set_num_threads(max(1, int(ctx.threads)))
    w = Weights(terms_from_config(ctx.cfg), uniform_weights(ctx.cfg))
    result = train_model(
        ctx.cfg,
        w,
        data_root=ctx.data_root,
        steps=steps,
        seed=ctx.seed,
        device=ctx.device,
        progress=False,
        loader=training_loader(ctx, w),
    )
    state = {k: v.detach().cpu().clone() for k, v in result.model.state_dict().items()}
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    seconds = time.perf_counter() - t0
    atomic_write_bytes(path, data)
    atomic_write_json(
        run_dir / TRUNK_INFO,
        {"steps": steps, "sha256": hashlib.sha256(data).hexdigest(), "seconds": seconds},
    )
    echo(f"warm start: trained the trunk for {steps} steps in {seconds:.1f} s -> {path}")
    return state


def load_trunk(path: Path) -> dict[str, Any]:
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a state dict")
    return state


def init_from_trunk(
    model: Any, trunk: dict[str, Any], trunk_terms: Sequence[str] | None = None
) -> int:
    """Copy the trunk's tensors into ``model`` where name and shape match (a candidate
    with some λ = 0 lacks those heads); returns how many tensors were copied.

    ``trunk_terms`` (the trunk's active terms, in order): the per-term loss
    normalisation buffers (``loss_scale``, ``loss_scale_seen``, ``loss_gain`` and
    ``loss_gain_set``, elo/model/network.py) are copied term by term, so every
    candidate continues the trunk's scales whichever of its terms are on. Without it
    they are copied only when their shapes match (the candidate has as many active
    terms as the trunk); a candidate that does not take the trunk's gains measures its
    own at its first step."""
    own = model.state_dict()
    by_term = _TERM_BUFFERS if trunk_terms is not None else ()
    same = {
        k: v
        for k, v in trunk.items()
        if k in own and k not in by_term and tuple(own[k].shape) == tuple(v.shape)
    }
    if trunk_terms is None and "loss_gain" not in same:
        # the gains were not copied (other terms): measure them anew at the first step
        same.pop("loss_gain_set", None)
    if trunk_terms is not None:
        at = {str(t): i for i, t in enumerate(trunk_terms)}
        rows = [at[str(t)] for t in model.active]
        for k in _TERM_BUFFERS:
            if k in trunk and k in own and len(trunk[k]) == len(at):
                same[k] = trunk[k][rows].clone()
        if "loss_gain_set" in trunk and "loss_gain_set" in own:
            same["loss_gain_set"] = trunk["loss_gain_set"].clone()
    model.load_state_dict(same, strict=False)
    return len(same)


#: ELoModel's buffers with one entry per active term (elo/model/network.py)
_TERM_BUFFERS = ("loss_scale", "loss_scale_seen", "loss_gain")

#: reference models of paired candidates without a trunk, per process: key -> state dict
_REFERENCE: dict[str, dict[str, Any]] = {}


def reference_state(ctx: TrialContext) -> dict[str, Any]:
    """What every candidate of a paired search (``search.paired: true``) starts from:
    the warm-start trunk when there is one, else the untrained model with every term
    on, built exactly as a run with all terms active builds it (the experiment seed,
    then :class:`elo.model.network.ELoModel`), cached per process. Copied by name
    (:func:`init_from_trunk`), each encoder and head starts with the same weights in
    every candidate, whichever other terms are on: without it the random stream is
    drawn in build order, so switching one term off changes the initial weights of
    the encoders and heads built after it."""
    if ctx.trunk is not None:
        return dict(ctx.trunk)
    import json

    key = json.dumps([ctx.cfg, ctx.seed], sort_keys=True, default=str)
    if key not in _REFERENCE:
        from elo.model.network import ELoModel
        from elo.model.objective import Weights, terms_from_config
        from elo.rundir import seed_everything

        seed_everything(ctx.seed)
        every = Weights(terms_from_config(ctx.cfg), uniform_weights(ctx.cfg))
        model = ELoModel(ctx.cfg, every, seed=ctx.seed)
        _REFERENCE.clear()  # one search per process: keep only the latest
        _REFERENCE[key] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return _REFERENCE[key]


def staged_training(
    ctx: TrialContext,
    weights: Any,
    rungs: Sequence[int],
    loader: Any = None,
) -> Iterator[tuple[int, Any, list[dict[str, float]]]]:
    """Train ``weights`` for ``rungs[-1]`` steps (lr schedule over all of them), from
    ``ctx.trunk`` when set; yield ``(steps, model, history)`` after each rung's steps.
    A non-finite loss raises :class:`elo.train.trainer.NonFiniteLossError`."""
    from elo.train.batches import batch_stream, to_device
    from elo.train.trainer import start_run, train_step

    total = int(rungs[-1])
    paired = bool(getattr(ctx, "paired", False))
    # built before start_run, which then seeds the run as without pairing
    reference = reference_state(ctx) if paired else None
    run = start_run(ctx.cfg, weights, total, None, ctx.seed, ctx.device, False)
    if reference is not None:  # one initial model for every candidate
        from elo.model.objective import terms_from_config

        terms = [str(t) for t in terms_from_config(ctx.cfg)]  # the reference's: all on
        init_from_trunk(run.model, reference, terms)
    elif ctx.trunk is not None:
        init_from_trunk(run.model, ctx.trunk)
    modalities = sorted({m for m, _ in run.model.read_views})
    batches = batch_stream(ctx.cfg, ctx.data_root, modalities, run.t, ctx.seed, 0, loader)
    run.model.train()
    params = [p for p in run.model.parameters() if p.requires_grad]
    done = 0
    for target in rungs:
        for step in range(done, int(target)):
            run.history.append(train_step(run, params, to_device(next(batches), ctx.device), step))
        done = int(target)
        yield done, run.model, run.history
        run.model.train()
