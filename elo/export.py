"""Export and load an encoder: ``DIR/rgb_encoder.safetensors`` + ``DIR/encoder.yaml``.

``encoder.yaml`` names the builder (a ``module:function`` inside ELo's own packages)
and its keyword arguments, so loading never unpickles code::

    builder: modalities.rgb:build_encoder
    kwargs: {width: 16, depth: 4, embed_dim: 64}
    input: {modality: rgb, shape: [3, 8, 64, 64]}

>>> enc = elo.load_encoder("runs/demo/final")   # doctest: +SKIP
>>> enc(clips).embedding.shape                   # doctest: +SKIP
torch.Size([B, 64])
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from elo.errors import ConfigError
from elo.rundir import atomic_write_bytes, atomic_write_text

WEIGHTS_FILE = "rgb_encoder.safetensors"
CONFIG_FILE = "encoder.yaml"
_ALLOWED_PREFIXES = ("elo.", "modalities.", "baselines.", "tasks.")


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

    _check_builder(builder)
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
    with open(cfg_path, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh) or {}
    builder = doc.get("builder")
    if not isinstance(builder, str):
        raise ConfigError(f"{cfg_path}: missing 'builder' (module:function)")
    fn = _resolve(builder)
    encoder = fn(**(doc.get("kwargs") or {}))
    state = load_file(str(w_path), device="cpu")
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ConfigError(
            f"{w_path}: weights do not match {builder} "
            f"(missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]})"
        )
    encoder.export_info = doc  # input shape and meta, for callers that need them
    return encoder.to(device).eval()


def _check_builder(builder: str) -> None:
    mod, _, fn = builder.partition(":")
    if not fn or not mod.startswith(_ALLOWED_PREFIXES) and mod not in ("elo", "modalities"):
        raise ConfigError(
            f"encoder builder {builder!r} must be 'module:function' inside ELo's packages"
        )


def _resolve(builder: str) -> Any:
    _check_builder(builder)
    mod, _, fn = builder.partition(":")
    try:
        return getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError):
        raise ConfigError(f"encoder builder {builder!r} not found in this ELo install") from None
