"""Log-mel spectrogram of the clip's audio window, ``1,F,Tm``, standardized with fixed
constants (so loudness differences survive). Computed with torchaudio transforms; the
audio itself is read with PyAV (``torchaudio.load`` needs system FFmpeg).

A clip without an audio track yields ``None``: the modality is *missing* (masked in the
batch), never zeros posing as audio. Log-mel features as in Arandjelović & Zisserman,
"Look, Listen and Learn", ICCV 2017.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch

from elo.errors import DataError
from elo.model.modality import MODALITIES, DecodedClip, EncoderBuild, Modality

_MELS: dict[tuple[Any, ...], Any] = {}


def _mel(sample_rate: int, params: Mapping[str, Any]) -> Any:
    import torchaudio

    key = (
        sample_rate,
        params["n_fft"],
        params["hop"],
        params["n_mels"],
        params["fmin"],
        params["fmax"],
    )
    if key not in _MELS:
        _MELS[key] = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=int(params["n_fft"]),
            hop_length=int(params["hop"]),
            n_mels=int(params["n_mels"]),
            f_min=float(params["fmin"]),
            f_max=float(params["fmax"]),
            power=2.0,
        )
    return _MELS[key]


def log_mel(samples: np.ndarray, sample_rate: int, params: Mapping[str, Any]) -> np.ndarray:
    """``N`` float samples -> standardized log-mel ``1,F,Tm`` float32."""
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))[None]  # 1,N
        mel = _mel(sample_rate, params)(x)  # 1,F,Tm
        db = 10.0 * torch.log10(mel + float(params["floor"]))
        out = (db - float(params["db_mean"])) / float(params["db_std"])
    return out.numpy()


@MODALITIES.register()
class Audio(Modality):
    """``audio``: ``1,F,Tm`` log-mel; ``None`` (missing) without an audio track."""

    name: ClassVar[str] = "audio"
    defaults: ClassVar[Mapping[str, Any]] = {
        "n_mels": 40,
        "n_fft": 512,
        "hop": 160,  # 10 ms at 16 kHz
        "fmin": 50.0,
        "fmax": 8000.0,
        "floor": 1e-10,  # power floor before log: -100 dB
        "db_mean": 0.0,  # fixed standardization (dB - mean) / std; ~N(0,1) on the demo
        "db_std": 10.0,
    }

    @classmethod
    def extract(cls, clip: DecodedClip, params: Mapping[str, Any]) -> np.ndarray | None:
        if clip.audio is None:
            return None
        if float(params["fmax"]) > clip.sample_rate / 2:
            raise DataError(
                f"modalities.audio.fmax={params['fmax']} exceeds Nyquist of {clip.sample_rate} Hz"
            )
        return log_mel(clip.audio, clip.sample_rate, params).astype(np.float16)  # 1,F,Tm

    @classmethod
    def output_shape(
        cls, frames: int, size: int, fps: float, sample_rate: int, params: Mapping[str, Any]
    ) -> tuple[int, ...]:
        n = int(round(frames / fps * sample_rate))
        return (1, int(params["n_mels"]), n // int(params["hop"]) + 1)

    @classmethod
    def augment(cls, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Per-clip gain (±6 dB, an additive shift in standardized log units)."""
        b = x.shape[0]
        shift = (torch.rand(b, generator=generator) * 2 - 1) * (6.0 / 10.0)
        return x + shift.view((b,) + (1,) * (x.dim() - 1)).to(x)

    @classmethod
    def build_encoder(cls, config: Mapping[str, Any] | None) -> EncoderBuild:
        """A 2D ResNet over the log-mel spectrogram (1 channel)."""
        from elo.model.encoders_tv import build_audio

        return build_audio(cls.name, 1, config)
