"""The task-head contract.

A head declares its ``name``, its ``arity`` (one modality, an ordered pair, or an
unordered pair), which modality combinations it supports, and the *views* it needs
of each modality. The model encodes the union of all requested (modality, view)
pairs once per step and hands every head the features; heads never call encoders.
A head returns ``{"loss": scalar, ...named logging scalars}`` with an *unweighted*
loss; the objective applies λ.

Adding a task is one file in ``tasks/``::

    @TASKS.register()
    class SpeedHead(TaskHead):
        name = "speed"
        arity = "one"
        views = ("base", "fast")
        ...
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from elo.errors import ConfigError
from elo.model.terms import Arity, TermKey
from elo.registry import Registry


@dataclass
class NoConfig:
    """Config of a head that takes no options."""


#: Task heads: every file of ``tasks/`` and the ``elo.tasks`` entry points (plug-ins and
#: the heads of other packages, e.g. the BYOL / SimSiam baselines: pyproject.toml).
TASKS: Registry[type[TaskHead]] = Registry(
    "task", packages=("elo.tasks",), entry_point_group="elo.tasks"
)

#: A view turns a modality batch into a derived input for the encoder:
#: ``fn(x, *, modality, generator) -> (x_view, info)`` where ``info`` holds per-sample
#: targets the head needs (e.g. ``{"order_label": B}``). ``"base"`` is the identity; a
#: task's own views live in its file and register with it (``VIEWS`` follows ``TASKS``).
ViewFn = Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]]
VIEWS: Registry[ViewFn] = Registry("view", follows=TASKS)


@VIEWS.register("base")
def base_view(
    x: torch.Tensor, *, modality: str, generator: torch.Generator
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The modality as extracted (after the modality's own augmentation)."""
    return x, {}


@dataclass(frozen=True)
class FeatureSpec:
    """What a head may know about one modality's encoder before it is built."""

    modality: str
    embed_dim: int  # pooled embedding size, B x D
    pyramid_channels: tuple[int, ...]  # channels of each tap, level 1..L
    input_shape: tuple[int, ...]  # one sample's input, e.g. (3, T, H, W) or (1, F, Tm)


@dataclass
class EncoderOutput:
    pyramid: list[torch.Tensor]  # level l: B,C_l,(T_l,)H_l,W_l
    embedding: torch.Tensor  # B,D


@dataclass
class HeadInputs:
    """Everything a head may read in one step."""

    features: Mapping[tuple[str, str], EncoderOutput]  # (modality, view) -> output
    views: Mapping[tuple[str, str], torch.Tensor]  # (modality, view) -> encoder input
    view_info: Mapping[tuple[str, str], dict[str, torch.Tensor]] = field(default_factory=dict)
    mask: Mapping[str, torch.Tensor] = field(default_factory=dict)  # modality -> B bool
    meta: Mapping[str, Any] = field(default_factory=dict)


class TaskHead(nn.Module):
    """Base class of every self-supervised task head."""

    name: ClassVar[str] = ""
    arity: ClassVar[Arity] = "one"
    #: views needed of *each* modality of the term (model builds them once).
    views: ClassVar[tuple[str, ...]] = ("base",)
    #: the head's own config section, validated by :meth:`check_config`.
    Config: ClassVar[type] = NoConfig

    def __init__(self, term: TermKey, specs: Mapping[str, FeatureSpec], config: Any) -> None:
        super().__init__()
        self.term = term
        self.specs = dict(specs)
        self.config = config

    # -- declarations ---------------------------------------------------------------
    @classmethod
    def supports(cls, modalities: tuple[str, ...]) -> bool:
        """Whether this task makes sense for this modality tuple (override to filter)."""
        return True

    @classmethod
    def input_views(cls, term: TermKey) -> list[tuple[str, str]]:
        """The (modality, view) pairs the head reads (the model derives each once)."""
        return [(m, v) for m in term.modalities for v in cls.views]

    @classmethod
    def encoded_views(cls, term: TermKey) -> list[tuple[str, str]]:
        """The (modality, view) pairs the head needs *encoded*: all it reads by default
        (a head that reads a raw target, e.g. transfer, encodes fewer)."""
        return cls.input_views(term)

    @classmethod
    def check_config(cls, section: Mapping[str, Any] | None) -> Any:
        """Validate ``section`` against :attr:`Config`; unknown keys name themselves."""
        section = dict(section or {})
        names = {f.name for f in dataclasses.fields(cls.Config)}
        for key in section:
            if key not in names:
                known = ", ".join(sorted(names)) or "(none)"
                raise ConfigError(
                    f"unknown config key 'heads.{cls.name}.{key}'; known keys for "
                    f"{cls.name}: {known}"
                )
        try:
            return cls.Config(**section)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"bad config for task {cls.name!r}: {exc}") from None

    @classmethod
    def build(
        cls,
        term: TermKey,
        specs: Mapping[str, FeatureSpec],
        section: Mapping[str, Any] | None = None,
    ) -> TaskHead:
        return cls(term, specs, cls.check_config(section))

    # -- hooks (default no-ops) ---------------------------------------------------------
    def bind_encoders(self, encoders: Mapping[str, nn.Module]) -> None:
        """Called once after the model is built. Only heads that own a copy of an
        encoder (BYOL's EMA target) use it; heads never *call* the online encoders."""

    def after_step(self, step: int, total_steps: int) -> None:
        """Called after each optimizer step (e.g. BYOL's EMA update)."""

    # -- computation ----------------------------------------------------------------
    def forward(self, inputs: HeadInputs) -> dict[str, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError
