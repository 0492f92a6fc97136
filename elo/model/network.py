"""The ELo model: one encoder per modality, one head per active loss term, and the
weighted sum ``L = Σ_k λ_k L_k`` (ELo, arXiv 2002.12177, eq. 1).

Cost: each step builds the union of the (modality, view) pairs the active heads
request, derives every view once, and runs each encoder once per (modality, view);
heads only read the shared features. Terms with λ ≈ 0 get no head, and a modality no
active term encodes gets no forward pass (the RGB student is always *built*, for
export and fitness, but only run when a term needs it).

>>> model = ELoModel(cfg, weights)                      # doctest: +SKIP
>>> out = model(batch, step=0)                          # doctest: +SKIP
>>> out.total.backward(); out.raw["rgb/reconstruction"] # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from elo.config import require
from elo.errors import ConfigError, DataError
from elo.model.heads import TASKS, VIEWS, EncoderOutput, FeatureSpec, HeadInputs, TaskHead
from elo.model.modality import MODALITIES, input_shapes
from elo.model.objective import Weights
from elo.model.terms import TermKey

STUDENT = "rgb"
SCALE_FLOOR = 1e-3  # a term's scale never goes below this (losses near 0: no blow-up)


@dataclass
class ViewPlan:
    """What the active terms need each step: their head classes (by term key), the
    (modality, view) pairs they read and those they encode (first request first), and
    the modalities that get an encoder (the student first)."""

    head_classes: dict[str, type[TaskHead]]
    reads: list[tuple[str, str]]
    encodes: list[tuple[str, str]]
    modalities: list[str]

    @classmethod
    def of(cls, active: Sequence[TermKey]) -> ViewPlan:
        heads: dict[str, type[TaskHead]] = {}
        needed: dict[str, None] = {STUDENT: None}
        reads: dict[tuple[str, str], None] = {}
        encodes: dict[tuple[str, str], None] = {}
        for term in active:
            head = heads[str(term)] = TASKS.get(term.task)
            reads.update(dict.fromkeys(head.input_views(term)))
            for mv in head.encoded_views(term):
                encodes[mv] = None
                needed[mv[0]] = None
        return cls(heads, list(reads), list(encodes), list(needed))


def build_encoders(
    cfg: Mapping[str, Any], plan: ViewPlan, shapes: Mapping[str, tuple[int, ...]]
) -> tuple[dict[str, nn.Module], dict[str, tuple[str, dict[str, Any]]], dict[str, FeatureSpec]]:
    """One encoder per modality of ``plan`` (its ``Modality.build_encoder`` from
    ``model.<modality>``), each one's (builder id, kwargs) for export, and the
    :class:`FeatureSpec` of every modality a term reads (0-dim for one read raw only)."""
    model_cfg = require(cfg, "model", dict)
    encoders: dict[str, nn.Module] = {}
    builds: dict[str, tuple[str, dict[str, Any]]] = {}
    specs: dict[str, FeatureSpec] = {}
    for m in plan.modalities:
        built = MODALITIES.get(m).build_encoder(model_cfg.get(m))
        enc = encoders[m] = built.encoder
        builds[m] = (built.builder, built.kwargs)
        specs[m] = FeatureSpec(m, enc.embed_dim, tuple(enc.pyramid_channels), shapes[m])
    for m, _ in plan.reads:  # read raw only (e.g. a transfer target): no encoder
        if m not in specs:
            specs[m] = FeatureSpec(m, 0, (), shapes.get(m, (1,)))
    return encoders, builds, specs


#: ``objective.normalize``: how each term is scaled before weighting
NORMALIZE_MODES = ("grad", "ema", "none")


def loss_normalization(cfg: Mapping[str, Any]) -> tuple[str, float]:
    """``(mode, momentum)`` from the ``objective`` section."""
    mode = str(require(cfg, "objective.normalize", str))
    momentum = float(require(cfg, "objective.norm_momentum", float))
    if mode not in NORMALIZE_MODES:
        raise ConfigError(f"objective.normalize {mode!r}: use {' or '.join(NORMALIZE_MODES)}")
    if not 0.0 <= momentum < 1.0:
        raise ConfigError(f"objective.norm_momentum must be in [0, 1), got {momentum}")
    return mode, momentum


@dataclass
class StepOutput:
    total: torch.Tensor  # scalar, Σ λ_k L_k / s_k
    raw: dict[str, torch.Tensor]  # term key -> unweighted loss L_k
    weighted: dict[str, torch.Tensor]  # term key -> λ_k L_k / s_k (s_k: its scale)
    logs: dict[str, torch.Tensor] = field(default_factory=dict)  # "<term>/<name>" -> scalar


class ELoModel(nn.Module):
    """Encoders (``self.encoders``, keyed by modality) + heads (``self.heads``, keyed by
    term key) for the active terms of ``weights``.

    **One scale for all terms** (``objective.normalize``): the raw losses of the tasks
    differ by orders of magnitude (measured at step 0 on the demo: gradient norms
    reaching the RGB encoder from 0.0035 to 15), so λ ∈ [0, 1] could not rebalance
    them. Each term is divided by ``s_k``:

    * ``ema``: ``s_k`` is a running mean (EMA, momentum ``objective.norm_momentum``,
      started at the term's first value) of its own detached |loss|, so every term
      starts at 1. The gradient of ``L_k / s_k`` is that of ``log L_k`` at
      ``L_k = s_k``: a term keeps its weight as its loss shrinks. Values are on one
      scale, gradients still differ (``benchmarks/bench_grad_scale.py``: 174x);
    * ``grad`` (default): the same running mean times a gain measured once, at the
      first training step, ``|∇L_k| / |L_k|`` (gradient norm reaching the encoders per
      unit loss; one extra backward pass per term, once), so every term *starts* with
      gradient norm λ_k at the encoders: λ means relative importance;
    * ``none``: raw sums.

    The scales update in training mode only and live in the state dict
    (``loss_scale``, ``loss_gain``), so a resumed run continues them.

    In training mode each modality first gets its ``Modality.augment`` (seeded by
    step; ``augment=False`` turns it off). ``share_features=False`` re-encodes the inputs
    for every term (the naive loop the step benchmark compares against); the losses are
    the same.
    """

    def __init__(
        self,
        cfg: Mapping[str, Any],
        weights: Weights,
        *,
        seed: int = 0,
        share_features: bool = True,
        augment: bool = True,
    ) -> None:
        super().__init__()
        self.augment = augment
        self.weights = weights
        self.seed = int(seed)
        self.share_features = share_features
        self.active: list[TermKey] = list(weights.active)
        plan = ViewPlan.of(self.active)
        self.head_classes = plan.head_classes
        self.read_views = plan.reads  # stable order: first request first
        self.encoded_views = plan.encodes
        self.input_shapes = input_shapes(cfg)
        encoders, builds, self.specs = build_encoders(cfg, plan, self.input_shapes)
        self.encoders = nn.ModuleDict(encoders)
        #: modality -> (builder id, kwargs) of its encoder, for export
        self.encoder_builders = {m: b for m, (b, _) in builds.items()}
        self.encoder_kwargs = {m: kw for m, (_, kw) in builds.items()}
        heads_cfg = require(cfg, "heads", dict)
        self.heads = nn.ModuleDict(
            {
                str(t): plan.head_classes[str(t)].build(t, self.specs, heads_cfg.get(t.task))
                for t in self.active
            }
        )
        self.normalize, self.norm_momentum = loss_normalization(cfg)
        n = len(self.active)
        self.register_buffer("loss_scale", torch.ones(n))  # s_k per active term
        self.register_buffer("loss_scale_seen", torch.zeros(n, dtype=torch.bool))
        self.register_buffer("loss_gain", torch.ones(n))  # normalize: grad (else 1)
        self.register_buffer("loss_gain_set", torch.zeros((), dtype=torch.bool))
        for head in self.heads.values():
            assert isinstance(head, TaskHead)
            head.bind_encoders(dict(self.encoders.items()))

    # -- one step -----------------------------------------------------------------------
    def make_views(
        self, batch: Mapping[str, Any], step: int, pairs: Sequence[tuple[str, str]]
    ) -> tuple[dict[tuple[str, str], torch.Tensor], dict[tuple[str, str], dict[str, torch.Tensor]]]:
        """Every requested view, derived once. Each view call gets a generator seeded
        from (seed, step) alone, so paired views of two modalities agree."""
        views: dict[tuple[str, str], torch.Tensor] = {}
        info: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
        inputs: dict[str, torch.Tensor] = {}
        for m, v in pairs:
            if m not in inputs:
                if m not in batch:
                    raise DataError(
                        f"the batch has no {m!r} input but an active term needs it; add {m} "
                        "to the loader's modalities or set its terms' weights to 0"
                    )
                inputs[m] = self._augment(m, batch[m], step)
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
            views[(m, v)], info[(m, v)] = VIEWS.get(v)(inputs[m], modality=m, generator=g)
        return views, info

    def crop_inputs(self, batch: Mapping[str, Any], step: int) -> dict[str, Any]:
        """Inputs longer or larger than the model's clip (``data.clip.frames`` x
        ``size``; the cache holds ``clip.extra_frames`` / ``extra_pixels`` more) are cut
        to it: in training a random window and square per clip (seeded by step, the same
        fractions for every modality of a clip, so RGB, flow and audio stay in
        correspondence), otherwise the centre."""
        from elo.model.views import crop_clips

        out = dict(batch)
        fr: tuple[torch.Tensor, torch.Tensor] | None = None
        for m, target in self.input_shapes.items():
            x = batch.get(m)
            if not isinstance(x, torch.Tensor) or x.dim() != len(target) + 1:
                continue
            shape = tuple(min(a, b) for a, b in zip(x.shape[1:], target, strict=True))
            if shape == tuple(x.shape[1:]):
                continue
            if fr is None:
                b = x.shape[0]
                if self.training and self.augment:
                    g = torch.Generator().manual_seed(self.seed * 1_000_003 + step + 424_242)
                    fr = torch.rand(b, generator=g), torch.rand(b, 2, generator=g)
                else:
                    fr = torch.full((b,), 0.5), torch.full((b, 2), 0.5)
                fr = self._real_frames_only(batch, fr[0]), fr[1]
            out[m] = crop_clips(x, shape, fr[0], fr[1])
        return out

    def _real_frames_only(self, batch: Mapping[str, Any], frac: torch.Tensor) -> torch.Tensor:
        """Time fractions narrowed to each clip's real frames (``meta.valid_frames``: a
        video shorter than the cached clip was padded with its last frame), measured on
        the student's frames."""
        from elo.model.views import valid_time_fraction

        valid = (batch.get("meta") or {}).get("valid_frames")
        x = batch.get(STUDENT)
        if valid is None or not isinstance(x, torch.Tensor) or x.dim() != 5:
            return frac
        valid = torch.as_tensor(valid)
        if valid.numel() != len(frac) or bool((valid <= 0).any()):
            return frac  # a loader that does not count real frames: the whole range
        return valid_time_fraction(frac, valid, x.shape[2], self.input_shapes[STUDENT][1])

    def _augment(self, m: str, x: torch.Tensor, step: int) -> torch.Tensor:
        """The modality's own training augmentation (``Modality.augment``), seeded."""
        if not (self.training and self.augment):
            return x
        if m not in MODALITIES:
            return x
        salt = zlib.crc32(m.encode())
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step + 7_777_777 * salt)
        return MODALITIES.get(m).augment(x, g)

    def forward(self, batch: Mapping[str, Any], *, step: int = 0) -> StepOutput:
        batch = self.crop_inputs(batch, step)
        views, info = self.make_views(batch, step, self.read_views)
        mask = {m: torch.as_tensor(v).bool() for m, v in (batch.get("present") or {}).items()}
        meta = batch.get("meta") or {}
        raw: dict[str, torch.Tensor] = {}
        weighted: dict[str, torch.Tensor] = {}
        logs: dict[str, torch.Tensor] = {}
        shared: dict[tuple[str, str], EncoderOutput] = {}
        if self.share_features:
            shared = {mv: self.encoders[mv[0]](views[mv]) for mv in self.encoded_views}
        for term in self.active:
            key = str(term)
            features = shared
            if not self.share_features:  # naive: encode again for this term
                cls = self.head_classes[key]
                features = {mv: self.encoders[mv[0]](views[mv]) for mv in cls.encoded_views(term)}
            out = self.heads[key](HeadInputs(features, views, info, mask, meta))
            raw[key] = out["loss"]
            for name, value in out.items():
                if name != "loss":
                    logs[f"{key}/{name}"] = value.detach()
        if self.normalize == "grad" and self.training and not bool(self.loss_gain_set):
            self._calibrate(raw)
        for k, term in enumerate(self.active):
            key = str(term)
            weighted[key] = self.weights[key] * raw[key] / self._scale(k, raw[key])
        total = torch.stack(list(weighted.values())).sum() if weighted else torch.zeros(())
        return StepOutput(total=total, raw=raw, weighted=weighted, logs=logs)

    @torch.no_grad()
    def _scale(self, k: int, loss: torch.Tensor) -> torch.Tensor:
        """The scale ``s_k`` of term ``k`` (see the class docstring), updated with this
        step's |loss| in training mode; 1 with ``objective.normalize: none``."""
        if self.normalize == "none":
            return torch.ones((), device=loss.device)
        scale: torch.Tensor = self.loss_scale  # type: ignore[assignment]
        seen: torch.Tensor = self.loss_scale_seen  # type: ignore[assignment]
        value = loss.detach().abs().float()
        if self.training and bool(torch.isfinite(value)):
            if not bool(seen[k]):
                scale[k] = value
                seen[k] = True
            else:
                m = self.norm_momentum
                scale[k] = m * scale[k] + (1 - m) * value
        gain: torch.Tensor = self.loss_gain  # type: ignore[assignment]
        return (gain[k] * scale[k].clamp_min(SCALE_FLOOR)).to(loss.dtype)

    def _calibrate(self, raw: Mapping[str, torch.Tensor]) -> None:
        """``normalize: grad``, first training step: ``gain_k = |∇L_k| / |L_k|``, the
        norm of term k's gradient reaching the encoders per unit of loss, so that
        ``λ_k L_k / (gain_k · |L_k|)`` reaches the encoders with gradient norm ``λ_k``
        at the start. One extra backward pass per term, once per run."""
        params = [p for p in self.encoders.parameters() if p.requires_grad]
        gain: torch.Tensor = self.loss_gain  # type: ignore[assignment]
        for k, term in enumerate(self.active):
            loss = raw[str(term)]
            value = float(loss.detach().abs())
            if not loss.requires_grad or not math.isfinite(value):
                continue
            grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
            norm = math.sqrt(sum(float(g.pow(2).sum()) for g in grads if g is not None))
            if norm > 0 and math.isfinite(norm):
                gain[k] = norm / max(value, SCALE_FLOOR)
        self.loss_gain_set.fill_(True)  # type: ignore[operator]

    def term_scales(self) -> dict[str, float]:
        """Each active term's current scale ``s_k`` (1.0 with ``normalize: none``)."""
        if self.normalize == "none":
            return {str(t): 1.0 for t in self.active}
        scale: torch.Tensor = self.loss_scale  # type: ignore[assignment]
        gain: torch.Tensor = self.loss_gain  # type: ignore[assignment]
        return {
            str(t): float(gain[k] * scale[k].clamp_min(SCALE_FLOOR))
            for k, t in enumerate(self.active)
        }

    def after_step(self, step: int, total_steps: int) -> None:
        """Head hooks after each optimizer step (e.g. BYOL's EMA target update)."""
        for head in self.heads.values():
            assert isinstance(head, TaskHead)
            head.after_step(step, total_steps)

    def first_nonfinite(self, out: StepOutput) -> tuple[str, float] | None:
        for key, value in out.raw.items():
            v = float(value.detach())
            if not math.isfinite(v):
                return key, v
        return None


@torch.no_grad()
def _module_device(module: nn.Module) -> torch.device:
    """The device of ``module``'s first parameter, else of its first buffer, else the CPU
    (a module with neither, e.g. :class:`elo.evaluation.evaluate.PixelStatsEncoder`)."""
    for t in itertools.chain(module.parameters(), module.buffers()):
        return t.device
    return torch.device("cpu")


def embed(
    encoder: nn.Module,
    x: torch.Tensor,
    batch_size: int = 32,
    *,
    device: str | torch.device | None = None,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Pooled embeddings ``N,D`` (float32, CPU) of inputs ``N,...``: the encoder in eval
    mode (restored after), no autograd graph, ``batch_size`` inputs at a time, each chunk
    through ``transform`` then on ``device`` (default: the encoder's). The encoder may
    return an ``EncoderOutput`` or the ``B,D`` tensor itself. The one embedding function
    of the fitness, the evaluation and the baselines' kNN."""
    was_training = encoder.training
    encoder.eval()
    try:
        where = _module_device(encoder) if device is None else torch.device(device)
        chunks: list[torch.Tensor] = []
        with torch.no_grad():  # no autograd graph: it held every chunk's activations
            for i in range(0, len(x), batch_size):
                part = x[i : i + batch_size]
                out = encoder((transform(part) if transform else part).to(where))
                emb = out.embedding if hasattr(out, "embedding") else out
                chunks.append(emb.float().cpu())
    finally:
        encoder.train(was_training)
    if not chunks:
        return torch.zeros(0, int(getattr(encoder, "embed_dim", 0)))
    return torch.cat(chunks)  # N,D
