"""Image encoders for the baseline trainers: torchvision's ResNet-18 (He et al.,
CVPR 2016) with a stem adjustable for small inputs, or a small CNN.

With ``small_input=True`` the ResNet stem is a 3x3 stride-1 convolution and no
max-pool (the CIFAR variant used by SimSiam's CIFAR experiments and solo-learn).
The encoder follows ELo's :class:`~elo.model.modality.Encoder` contract, so the exported
model loads with ``elo.load_encoder(DIR)``: it takes images ``B,3,H,W`` or clips
``B,3,T,H,W`` (frames encoded one by one, embeddings averaged over time).

>>> import torch
>>> enc = build_image_encoder(arch="small_cnn", width=8)
>>> enc(torch.zeros(2, 3, 16, 16)).embedding.shape
torch.Size([2, 64])
>>> enc(torch.zeros(2, 3, 4, 16, 16)).embedding.shape
torch.Size([2, 64])
"""

from __future__ import annotations

import torch
from torch import nn

from elo.errors import ConfigError
from elo.model.heads import EncoderOutput
from elo.model.modality import Encoder

ARCHS = ("resnet18", "small_cnn")


def _conv_bn(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ImageEncoder(Encoder):
    """A 2D backbone with four stages; ``forward`` returns an ``EncoderOutput``."""

    def __init__(
        self, *, arch: str = "resnet18", small_input: bool = True, width: int = 32
    ) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise ConfigError(f"unknown encoder.arch {arch!r}; known: {', '.join(ARCHS)}")
        if arch == "resnet18":
            from torchvision.models import resnet18

            net = resnet18(weights=None)
            if small_input:
                net.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
                net.maxpool = nn.Identity()
            self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
            self.stages = nn.ModuleList([net.layer1, net.layer2, net.layer3, net.layer4])
            self.pyramid_channels = (64, 128, 256, 512)
        else:
            if width < 1:
                raise ConfigError(f"encoder.width must be >= 1, got {width}")
            chans = (width, 2 * width, 4 * width, 8 * width)
            self.stem = _conv_bn(3, width, 1 if small_input else 2)
            self.stages = nn.ModuleList(
                [
                    nn.Sequential(_conv_bn(cin, cout, 1 if i == 0 else 2), _conv_bn(cout, cout, 1))
                    for i, (cin, cout) in enumerate(zip((width, *chans[:-1]), chans, strict=True))
                ]
            )
            self.pyramid_channels = chans
        self.embed_dim = self.pyramid_channels[-1]

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        clip = x.dim() == 5
        if clip:  # B,3,T,H,W -> B*T,3,H,W
            b, c, t, h, w = x.shape
            x = x.transpose(1, 2).reshape(b * t, c, h, w)
        h_ = self.stem(x)
        pyramid = []
        for stage in self.stages:
            h_ = stage(h_)  # N,C_l,H_l,W_l
            pyramid.append(h_)
        emb = h_.mean(dim=(2, 3))  # N,D
        if clip:
            emb = emb.view(b, t, -1).mean(1)  # B,D
            pyramid = [p.view(b, t, *p.shape[1:]).transpose(1, 2) for p in pyramid]
        return EncoderOutput(pyramid=pyramid, embedding=emb)


def build_image_encoder(
    arch: str = "resnet18", small_input: bool = True, width: int = 32
) -> ImageEncoder:
    """Builder named in the export's ``encoder.yaml`` (``baselines.image_encoder:...``)."""
    return ImageEncoder(arch=arch, small_input=small_input, width=width)
