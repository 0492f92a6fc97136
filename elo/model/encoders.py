"""Modality encoders: (2+1)D / 3D ResNets for video-like inputs (RGB, flow) and a 2D
ResNet over log-mel for audio (ELo, arXiv 2002.12177, sec. 3: one network per
modality; the paper uses (2+1)D ResNet-50 video networks, Tran et al. CVPR 2018).

Both return :class:`elo.model.heads.EncoderOutput`: the feature pyramid (the output of each
residual stage, level 1 = earliest; the taps distillation may use) and a pooled,
projected embedding. The blocks are torchvision's video ResNet blocks
(``torchvision.models.video.resnet``); the stem takes any number of input channels.

>>> enc = build_video_encoder(in_channels=3, width=8, depth=3, embed_dim=16)
>>> out = enc(torch.zeros(2, 3, 8, 32, 32))          # B,C,T,H,W
>>> out.embedding.shape, [p.shape[1] for p in out.pyramid]
(torch.Size([2, 16]), [8, 16, 32])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torchvision.models import resnet as tv2d
from torchvision.models.video import resnet as tvv

from elo.errors import ConfigError
from elo.model.heads import EncoderOutput
from elo.model.modality import Encoder, EncoderBuild

_CONVS = {"2plus1d": tvv.Conv2Plus1D, "3d": tvv.Conv3DSimple, "2d": tvv.Conv3DNoTemporal}
_VIDEO_BLOCKS: dict[str, type[nn.Module]] = {"basic": tvv.BasicBlock, "bottleneck": tvv.Bottleneck}
_AUDIO_BLOCKS: dict[str, type[nn.Module]] = {
    "basic": tv2d.BasicBlock,
    "bottleneck": tv2d.Bottleneck,
}


def _layers(layers: Sequence[int] | None, depth: int, where: str) -> list[int]:
    if depth < 1:
        raise ConfigError(f"{where}: depth must be >= 1, got {depth}")
    out = [1] * depth if layers is None else [int(n) for n in layers]
    if len(out) != depth or min(out) < 1:
        raise ConfigError(f"{where}: layers must list {depth} block counts >= 1, got {layers}")
    return out


#: ``model.<m>.init``: torchvision's video-ResNet init (default) or PyTorch's layer defaults
_INITS = {"kaiming": "kaiming", "pytorch": "pytorch"}


def _pick(table: dict[str, Any], key: str, what: str) -> Any:
    if key not in table:
        raise ConfigError(f"unknown encoder {what} {key!r}; known: {', '.join(sorted(table))}")
    return table[key]


class _ResNetEncoder(Encoder):
    """What the video and audio ResNets share: residual stages after a stem (built by
    the subclass as ``self.stem``), each stage's output a pyramid level, and a linear
    projection of the last level's global average."""

    stem: nn.Module

    def _add_stages(
        self,
        counts: Sequence[int],
        width: int,
        expansion: int,
        block: Callable[..., nn.Module],
        downsample: Callable[[int, int, int], nn.Module],
        embed_dim: int,
    ) -> None:
        """Stage ``i`` has ``counts[i]`` blocks of ``width * 2**i`` planes, stride 2 for
        ``i > 0``. ``block(inplanes, planes[, stride, down])`` builds one block;
        ``downsample(inplanes, out_planes, stride)`` the shortcut projection when the
        shape changes."""
        stages, channels, inplanes = [], [], width
        for i, n in enumerate(counts):
            planes, stride = width * 2**i, 1 if i == 0 else 2
            out_planes = planes * expansion
            down = None
            if stride != 1 or inplanes != out_planes:
                down = downsample(inplanes, out_planes, stride)
            blocks = [block(inplanes, planes, stride, down)]
            blocks += [block(out_planes, planes) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            channels.append(out_planes)
            inplanes = out_planes
        self.stages = nn.ModuleList(stages)
        self.pyramid_channels = tuple(channels)
        self.embed_dim = embed_dim
        self.proj = nn.Linear(channels[-1], embed_dim)
        if getattr(self, "init_mode", "kaiming") == "kaiming":
            self.init_weights()  # else PyTorch's defaults (``init: pytorch``)

    def init_weights(self) -> None:
        """As torchvision's video ResNets (``torchvision.models.video.resnet.VideoResNet``):
        convolutions Kaiming-normal with ``fan_out`` for ReLU, BatchNorm weight 1 and bias
        0. PyTorch's default conv init shrinks activations stage after stage (measured on
        the demo: pooled level-4 activations 20x smaller than level 1, random-init
        embeddings of effective rank ~2 of 64); with this init a random encoder keeps
        a spread embedding (``tests/test_encoders.py``). The projection keeps PyTorch's
        default Linear init."""
        for mod in self.modules():
            if isinstance(mod, nn.Conv3d | nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
                if mod.bias is not None:
                    nn.init.zeros_(mod.bias)
            elif isinstance(mod, nn.BatchNorm3d | nn.BatchNorm2d):
                nn.init.ones_(mod.weight)
                nn.init.zeros_(mod.bias)

    def _encode(self, x: torch.Tensor) -> EncoderOutput:
        h = self.stem(x)
        pyramid = []
        for stage in self.stages:
            h = stage(h)
            pyramid.append(h)  # B,C_l,*spatiotemporal_l
        emb = self.proj(h.mean(dim=tuple(range(2, h.dim()))))  # B,D
        return EncoderOutput(pyramid=pyramid, embedding=emb)


class VideoEncoder(_ResNetEncoder):
    """(2+1)D or 3D ResNet over ``B,C,T,H,W``; stage ``l`` halves T, H, W for ``l > 1``."""

    def __init__(
        self,
        *,
        in_channels: int,
        width: int,
        depth: int,
        embed_dim: int,
        block: str = "basic",
        conv: str = "2plus1d",
        layers: Sequence[int] | None = None,
        stem_kernel: int = 7,
        init: str = "kaiming",
    ) -> None:
        super().__init__()
        self.init_mode = _pick(_INITS, init, "init")
        block_cls = _pick(_VIDEO_BLOCKS, block, "block")
        conv_cls = _pick(_CONVS, conv, "conv")
        counts = _layers(layers, depth, "video encoder")
        pad = stem_kernel // 2
        mid = max(
            1,
            (in_channels * width * stem_kernel**2 * 3)
            // (in_channels * stem_kernel**2 + 3 * width),
        )
        self.stem = nn.Sequential(  # (2+1)D stem, spatial stride 2 (as R2Plus1dStem)
            nn.Conv3d(
                in_channels,
                mid,
                (1, stem_kernel, stem_kernel),
                (1, 2, 2),
                (0, pad, pad),
                bias=False,
            ),
            nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, width, (3, 1, 1), 1, (1, 0, 0), bias=False),
            nn.BatchNorm3d(width),
            nn.ReLU(inplace=True),
        )

        def block_fn(
            inplanes: int, planes: int, stride: int = 1, down: nn.Module | None = None
        ) -> nn.Module:
            built: nn.Module = block_cls(inplanes, planes, conv_cls, stride, down)
            return built

        def down_fn(inplanes: int, out_planes: int, stride: int) -> nn.Module:
            ds = conv_cls.get_downsample_stride(stride)
            return nn.Sequential(
                nn.Conv3d(inplanes, out_planes, 1, stride=ds, bias=False),
                nn.BatchNorm3d(out_planes),
            )

        self._add_stages(counts, width, block_cls.expansion, block_fn, down_fn, embed_dim)

    def forward(self, x: torch.Tensor) -> EncoderOutput:  # x: B,C,T,H,W
        if x.dim() != 5:
            raise ValueError(f"video encoder expects B,C,T,H,W, got shape {tuple(x.shape)}")
        return self._encode(x)  # pyramid B,C_l,T_l,H_l,W_l; embedding B,D


class AudioEncoder(_ResNetEncoder):
    """2D ResNet over a log-mel spectrogram ``B,1,F,Tm``; stage ``l`` halves F, Tm for ``l > 1``."""

    def __init__(
        self,
        *,
        in_channels: int,
        width: int,
        depth: int,
        embed_dim: int,
        block: str = "basic",
        layers: Sequence[int] | None = None,
        init: str = "kaiming",
    ) -> None:
        super().__init__()
        self.init_mode = _pick(_INITS, init, "init")
        block_cls = _pick(_AUDIO_BLOCKS, block, "block")
        counts = _layers(layers, depth, "audio encoder")
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )

        def down_fn(inplanes: int, out_planes: int, stride: int) -> nn.Module:
            return nn.Sequential(
                nn.Conv2d(inplanes, out_planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_planes),
            )

        self._add_stages(counts, width, block_cls.expansion, block_cls, down_fn, embed_dim)

    def forward(self, x: torch.Tensor) -> EncoderOutput:  # x: B,1,F,Tm
        if x.dim() != 4:
            raise ValueError(f"audio encoder expects B,C,F,Tm, got shape {tuple(x.shape)}")
        return self._encode(x)  # pyramid B,C_l,F_l,Tm_l; embedding B,D


def build_video_encoder(
    config: Mapping[str, Any] | None = None,
    /,
    *,
    in_channels: int = 3,
    width: int = 16,
    depth: int = 4,
    embed_dim: int = 64,
    block: str = "basic",
    conv: str = "2plus1d",
    layers: Sequence[int] | None = None,
    stem_kernel: int = 7,
    init: str = "kaiming",
) -> VideoEncoder:
    """A video encoder, from CPU-tiny (``width=8, depth=3``) to the paper's (2+1)D
    ResNet-50 (``width=64, depth=4, block="bottleneck", layers=[3, 4, 6, 3]``).

    ``config`` (optional, positional: a ``model.<modality>`` section) overrides the
    keywords; its keys are checked."""
    kw: dict[str, Any] = dict(
        in_channels=in_channels,
        width=width,
        depth=depth,
        embed_dim=embed_dim,
        block=block,
        conv=conv,
        layers=layers,
        stem_kernel=stem_kernel,
        init=init,
    )
    return VideoEncoder(**_checked(config, kw, "video"))


def build_audio_encoder(
    config: Mapping[str, Any] | None = None,
    /,
    *,
    in_channels: int = 1,
    width: int = 16,
    depth: int = 4,
    embed_dim: int = 64,
    block: str = "basic",
    layers: Sequence[int] | None = None,
    init: str = "kaiming",
) -> AudioEncoder:
    """A 2D ResNet over log-mel (ResNet-18 layout at ``width=64, layers=[2, 2, 2, 2]``);
    ``config`` as for :func:`build_video_encoder`."""
    kw: dict[str, Any] = dict(
        in_channels=in_channels,
        width=width,
        depth=depth,
        embed_dim=embed_dim,
        block=block,
        layers=layers,
        init=init,
    )
    return AudioEncoder(**_checked(config, kw, "audio"))


def _checked(
    config: Mapping[str, Any] | None, defaults: Mapping[str, Any], kind: str
) -> dict[str, Any]:
    """The builder's keyword ``defaults`` overridden by ``config`` (keys checked), with
    ``layers`` as a list: the constructor kwargs."""
    out = dict(config or {})
    for key in out:
        if key not in defaults:
            raise ConfigError(
                f"unknown {kind} encoder option {key!r}; known: {', '.join(sorted(defaults))}"
            )
    kw = {**defaults, **out}
    if kw["layers"] is not None:
        kw["layers"] = list(kw["layers"])
    return kw


#: builder ids of the project's encoders, as an export writes them (elo/train/export.py)
VIDEO_BUILDER = "elo.encoders:build_video_encoder"
AUDIO_BUILDER = "elo.encoders:build_audio_encoder"


def build_checked(
    modality: str,
    builder: str,
    fn: Callable[..., Encoder],
    fixed: Mapping[str, Any],
    section: Mapping[str, Any] | None,
) -> EncoderBuild:
    """``fn(**kwargs)`` with ``kwargs`` = the modality's ``fixed`` arguments (e.g. its
    input channels) overridden by its ``model.<modality>`` ``section``, every key one
    that ``fn`` takes; ``builder`` is the id an export writes."""
    kwargs = {**dict(fixed), **dict(section or {})}
    allowed = set(fn.__kwdefaults__ or {})
    for key in kwargs:
        if key not in allowed:
            raise ConfigError(
                f"unknown config key 'model.{modality}.{key}'; known: {', '.join(sorted(allowed))}"
            )
    return EncoderBuild(fn(**kwargs), builder, kwargs)


def build_encoder(
    modality: str, section: Mapping[str, Any] | None
) -> tuple[Encoder, dict[str, Any]]:
    """The encoder of a registered ``modality`` (its :meth:`Modality.build_encoder`)
    and the kwargs that rebuild it (for export)."""
    from elo.model.modality import MODALITIES

    if modality not in MODALITIES:
        raise ConfigError(
            f"no encoder for modality {modality!r}; known: {', '.join(MODALITIES.list())}"
        )
    built = MODALITIES.get(modality).build_encoder(section)
    return built.encoder, built.kwargs
