"""Optical flow between consecutive frames, ``2,T-1,H,W``, cached in pixels per frame
(clipped to ``±bound``) and scaled by the data on load.

**Scale measured from the data**: a fixed bound (8 px -> 1) left flow at 32 px with a
std of 0.01-0.02, so flow reconstruction / future / transfer losses (~2e-4) were solved
by predicting zeros. Now :class:`elo.data.datasets.ClipDataset` measures the root mean square of
the cached flow over (a sample of) the clips, stores it with the cache
(``<cache>/flow-<params>.scale.json``) and passes it as ``params["scale"]`` to
:meth:`Flow.to_tensor`, which divides by it: the model's flow has unit variance at any
resolution or speed, and predicting zeros costs ~1.

Methods (OpenCV contrib): ``dis`` (default; Kroeger et al., "Fast Optical Flow using
Dense Inverse Search", ECCV 2016), ``farneback`` (Farnebäck, SCIA 2003) and ``tvl1``
(Zach, Pock & Bischof, DAGM 2007). TV-L1 is about 100x slower than DIS
(9-25 frames/s per core at 64x64, docs/dependencies.md): use it offline only.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch

from elo.errors import ConfigError, DataError
from elo.model.modality import MODALITIES, DecodedClip, EncoderBuild, Modality

_ESTIMATORS: dict[tuple[str, str], Any] = {}


def _estimator(method: str, preset: str) -> Any:
    cv2: Any = importlib.import_module("cv2")

    key = (method, preset)
    if key not in _ESTIMATORS:
        if method == "dis":
            presets = {
                "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
                "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
            }
            if preset not in presets:
                raise ConfigError(f"modalities.flow.preset {preset!r}: use {', '.join(presets)}")
            _ESTIMATORS[key] = cv2.DISOpticalFlow_create(presets[preset])
        elif method == "tvl1":
            if not hasattr(cv2, "optflow"):  # core OpenCV (the default install) lacks it
                raise DataError(
                    "modalities.flow.method tvl1 needs OpenCV contrib: pip uninstall "
                    "opencv-python-headless && pip install opencv-contrib-python-headless "
                    "(docs/dependencies.md), or use method=dis"
                )
            _ESTIMATORS[key] = cv2.optflow.DualTVL1OpticalFlow_create()
        elif method == "farneback":
            _ESTIMATORS[key] = None
        else:
            raise ConfigError(f"modalities.flow.method {method!r}: use dis, farneback or tvl1")
    return _ESTIMATORS[key]


def compute_flow(gray: np.ndarray, method: str = "dis", preset: str = "medium") -> np.ndarray:
    """Raw flow in pixels for ``T,H,W`` uint8 gray frames -> ``T-1,H,W,2`` float32."""
    cv2: Any = importlib.import_module("cv2")
    est = _estimator(method, preset)
    out = np.empty((gray.shape[0] - 1, *gray.shape[1:], 2), dtype=np.float32)
    for i in range(gray.shape[0] - 1):
        a, b = gray[i], gray[i + 1]
        if method == "farneback":
            out[i] = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 9, 3, 5, 1.1, 0)
        else:
            out[i] = est.calc(a, b, None)
    return out


@MODALITIES.register()
class Flow(Modality):
    """``flow``: ``2,T-1,H,W`` (dx, dy) in pixels per frame, divided on load by the
    data's flow scale (unit variance)."""

    name: ClassVar[str] = "flow"
    video_like: ClassVar[bool] = True
    reverses_sign: ClassVar[bool] = True  # backwards, motion runs the other way
    #: the dataset measures the flow's RMS once per cache and divides by it (to_tensor)
    scaled_by_data: ClassVar[bool] = True
    defaults: ClassVar[Mapping[str, Any]] = {
        "method": "dis",
        "preset": "medium",
        "bound": 32.0,  # pixels per frame: cached flow is clipped to ±bound
        "units": "pixels",  # cache layout marker: raw pixels (scaled on load)
        # on load: "rms" divides by the data's RMS (unit variance); a number s divides by
        # s pixels and clips to [-1, 1] (a fixed scale; 8 = 8 px/frame -> 1)
        "norm": "rms",
    }
    load_only: ClassVar[tuple[str, ...]] = ("norm",)

    @classmethod
    def params(cls, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        out = super().params(overrides)
        norm = out["norm"]
        ok = norm == "rms" or (
            isinstance(norm, int | float) and not isinstance(norm, bool) and norm > 0
        )
        if not ok:
            raise ConfigError(
                f"data.modalities.flow.norm is {norm!r}: use rms or a positive number of pixels"
            )
        return out

    @classmethod
    def extract(cls, clip: DecodedClip, params: Mapping[str, Any]) -> np.ndarray | None:
        import cv2

        gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in clip.frames])  # T,H,W
        flow = compute_flow(gray, str(params["method"]), str(params["preset"]))  # T-1,H,W,2
        bound = float(params["bound"])
        flow = np.clip(flow, -bound, bound)  # pixels; scaled by the data on load
        return np.ascontiguousarray(flow.transpose(3, 0, 1, 2)).astype(np.float16)  # 2,T-1,H,W

    @classmethod
    def output_shape(
        cls, frames: int, size: int, fps: float, sample_rate: int, params: Mapping[str, Any]
    ) -> tuple[int, ...]:
        return (2, frames - 1, size, size)

    @classmethod
    def to_tensor(cls, arr: np.ndarray, params: Mapping[str, Any]) -> torch.Tensor:
        """Cached pixels -> float32 divided by ``params["scale"]`` (the data's flow RMS,
        set by the dataset; 1 when absent)."""
        x = torch.from_numpy(np.asarray(arr, dtype=np.float32))
        norm = params["norm"]  # configs/data/*.yaml
        if norm == "rms":
            return x / float(params.get("scale", 1.0) or 1.0)
        return (x / float(norm)).clamp(-1.0, 1.0)

    @classmethod
    def augment(cls, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Per-clip magnitude jitter (x0.8-1.2), which keeps the flow's direction."""
        b = x.shape[0]
        scale = 0.8 + 0.4 * torch.rand(b, generator=generator)
        return x * scale.view((b,) + (1,) * (x.dim() - 1)).to(x)

    @classmethod
    def build_encoder(cls, config: Mapping[str, Any] | None) -> EncoderBuild:
        """A video ResNet over the 2 flow channels (or torchvision's with ``arch``)."""
        from elo.model.encoders_tv import build_video

        return build_video(cls.name, 2, config)
