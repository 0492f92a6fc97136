"""Export and load an encoder: ``DIR/rgb_encoder.safetensors`` + ``DIR/encoder.yaml``.

``encoder.yaml`` names the builder and its keyword arguments, so loading never unpickles
code::

    builder: modalities.rgb:build_encoder
    kwargs: {width: 16, depth: 4, embed_dim: 64}
    input: {modality: rgb, shape: [3, 8, 64, 64]}

Only the builders in :data:`ENCODER_BUILDERS` are accepted, each with a fixed set of
keyword arguments of checked types and ranges; anything else (another function, an
unknown or ill-typed argument) is refused with one line before anything is imported,
built or written. An exported folder is data, never code (docs/reliability.md).

>>> enc = elo.load_encoder("runs/demo/final")   # doctest: +SKIP
>>> enc(clips).embedding.shape                   # doctest: +SKIP
torch.Size([B, 64])
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from elo.errors import ConfigError
from elo.rundir import atomic_write_bytes, atomic_write_text

WEIGHTS_FILE = "rgb_encoder.safetensors"
CONFIG_FILE = "encoder.yaml"


def _int(lo: int, hi: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _one_of(*choices: str) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, str) and v in choices


def _int_list(v: Any) -> bool:
    return v is None or (isinstance(v, list) and 0 < len(v) <= 8 and all(_int(1, 64)(x) for x in v))


def _bool(v: Any) -> bool:
    return isinstance(v, bool)


_VIDEO_ARGS: dict[str, Callable[[Any], bool]] = {
    "in_channels": _int(1, 16),
    "width": _int(1, 1024),
    "depth": _int(1, 8),
    "embed_dim": _int(1, 65536),
    "block": _one_of("basic", "bottleneck"),
    "conv": _one_of("2plus1d", "3d", "2d"),
    "layers": _int_list,
    "stem_kernel": _int(1, 15),
    "init": _one_of("kaiming", "pytorch"),
}

#: Builder ids are a file-format name, stable across releases: ``elo.encoders:…`` was the
#: module path before the model moved to ``elo/model/`` (docs/architecture.md); exports written
#: by any version name the same id. Id module -> the module that holds it today.
_BUILDER_MODULES = {
    "elo.encoders": "elo.model.encoders",
    "elo.encoders_tv": "elo.model.encoders_tv",
    "elo.evaluate": "elo.evaluation.pixel_stats",
    "elo.demo": "elo.evaluation.pixel_stats",
    "baselines.image_encoder": "elo.baselines.image_encoder",
}

#: the only builders an ``encoder.yaml`` may name: builder id -> {argument: check}
ENCODER_BUILDERS: dict[str, dict[str, Callable[[Any], bool]]] = {
    "elo.encoders:build_video_encoder": _VIDEO_ARGS,
    "elo.encoders:build_audio_encoder": {k: v for k, v in _VIDEO_ARGS.items() if k != "conv"},
    "elo.encoders_tv:build_r2plus1d_18": {  # torchvision's R(2+1)D-18 (elo/model/encoders_tv.py)
        "arch": _one_of("r2plus1d_18"),
        "in_channels": _int(1, 16),
        "embed_dim": _int(1, 65536),
    },
    "elo.evaluate:build_pixel_stats_encoder": {"in_channels": _int(1, 16), "grid": _int(1, 64)},
    "elo.demo:build_probe_encoder": {"kind": _one_of("frame", "timemean", "motion")},  # demo rows
    "baselines.image_encoder:build_image_encoder": {
        "arch": _one_of("resnet18", "small_cnn"),
        "small_input": _bool,
        "width": _int(1, 1024),
    },
}


def save_encoder(
    out_dir: str | Path,
    encoder: Any,
    *,
    builder: str,
    kwargs: Mapping[str, Any],
    input_info: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write the encoder's weights and how to rebuild it; returns ``out_dir``."""
    from safetensors.torch import save

    _check_builder(builder, kwargs, "save_encoder")
    out = Path(out_dir)
    state = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    atomic_write_bytes(out / WEIGHTS_FILE, save(state))
    doc = {
        "builder": builder,
        "kwargs": dict(kwargs),
        "input": dict(input_info or {}),
        "meta": dict(meta or {}),
    }
    atomic_write_text(out / CONFIG_FILE, yaml.safe_dump(doc, sort_keys=False))
    return out


def load_encoder(path: str | Path, device: str = "cpu") -> Any:
    """The exported encoder in eval mode, ready for inference: ``elo.load_encoder(DIR)``."""
    from safetensors.torch import load_file

    d = Path(path)
    cfg_path, w_path = d / CONFIG_FILE, d / WEIGHTS_FILE
    for p in (cfg_path, w_path):
        if not p.is_file():
            raise ConfigError(f"{p} not found; point at a folder written by elo-train")
    try:
        with open(cfg_path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{cfg_path}: invalid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{cfg_path}: top level must be a mapping (builder, kwargs, ...)")
    builder = doc.get("builder")
    if not isinstance(builder, str):
        raise ConfigError(f"{cfg_path}: missing 'builder' (module:function)")
    kwargs = doc.get("kwargs") or {}
    _check_builder(builder, kwargs, str(cfg_path))
    fn = _resolve(builder)
    encoder = fn(**kwargs)
    state = load_file(str(w_path), device="cpu")
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ConfigError(
            f"{w_path}: weights do not match {builder} "
            f"(missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]})"
        )
    encoder.export_info = doc  # input shape and meta, for callers that need them
    return encoder.to(device).eval()


def _check_builder(builder: str, kwargs: Any, where: str) -> None:
    """Refuse a builder outside :data:`ENCODER_BUILDERS` or an argument it does not
    take (unknown name, wrong type, out of range); one line naming ``where``."""
    if builder not in ENCODER_BUILDERS:
        raise ConfigError(
            f"{where}: encoder builder {builder!r} is not allowed; "
            f"known builders: {', '.join(sorted(ENCODER_BUILDERS))}"
        )
    if not isinstance(kwargs, Mapping):
        raise ConfigError(f"{where}: 'kwargs' must be a mapping of argument -> value")
    checks = ENCODER_BUILDERS[builder]
    for key, value in kwargs.items():
        if key not in checks:
            raise ConfigError(
                f"{where}: {builder} takes no argument {key!r}; known: {', '.join(sorted(checks))}"
            )
        if not checks[key](value):
            raise ConfigError(f"{where}: {builder} argument {key}={value!r} is out of range")


def _resolve(builder: str) -> Any:
    mod, _, fn = builder.partition(":")
    mod = _BUILDER_MODULES.get(mod, mod)
    try:
        return getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError):
        raise ConfigError(f"encoder builder {builder!r} not found in this ELo install") from None


def export_student(out: Path, model: Any, cfg: Mapping[str, Any], weights: Any, steps: int) -> Path:
    """The student (RGB) encoder of a trained :class:`~elo.model.network.ELoModel` as
    ``out/rgb_encoder.safetensors`` + ``out/encoder.yaml``, with its input
    normalisation and the run's steps and λ (elo/train/trainer.py calls it)."""
    from elo.errors import EloError
    from elo.model.encoders_tv import export_builder
    from elo.model.network import STUDENT

    norm: dict[str, Any] = {}
    try:
        from elo.model.modality import MODALITIES

        mods = cfg["data"]["modalities"] or {}
        params = MODALITIES.get(STUDENT).params(mods.get(STUDENT))
        norm = {k: params[k] for k in ("mean", "std", "center_time") if k in params}
    except EloError:
        pass
    return save_encoder(
        out,
        model.encoders[STUDENT],
        builder=export_builder(model.encoder_kwargs[STUDENT]),
        kwargs=model.encoder_kwargs[STUDENT],
        input_info={
            "modality": STUDENT,
            "shape": list(model.input_shapes[STUDENT]),
            "layout": "B,C,T,H,W",
            "normalization": norm,
        },
        meta={"steps": steps, "weights": {k: float(v) for k, v in weights.values.items()}},
    )
