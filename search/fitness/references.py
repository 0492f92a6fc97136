"""The fixed hand-made statistics of raw audio and flow clips that the cross-modal
fitnesses (:mod:`search.fitness.xmodal`, :mod:`search.fitness.combined`,
:mod:`search.fitness.predict`) compare the RGB embeddings with
(:func:`reference_features`), how they are read from a score's context, and the
signed geometric mean that aggregates over references.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from elo.errors import DataError
from elo.search.fitness.base import as_embeddings

#: reference modalities with fixed hand-made statistics (see :func:`reference_features`)
REFERENCES = ("audio", "flow")


def audio_statistics(audio: Any) -> np.ndarray:
    """Fixed per-clip statistics of log-mel spectrograms ``N,1,F,Tm`` -> ``N,2F``.

    The spectral *shape* (mean log-mel per band over time, minus the clip's mean over
    bands: pitch and timbre, not loudness) and the temporal std per band (how each
    band's loudness moves). No weights: a reference that cannot drift.
    """
    a = as_embeddings(np.asarray(_numpy(audio), dtype=np.float64).reshape(len(audio), -1))
    a = a.reshape(np.shape(audio))[:, 0]  # N,F,Tm
    profile = a.mean(axis=2)  # N,F
    profile = profile - profile.mean(axis=1, keepdims=True)
    return np.concatenate([profile, a.std(axis=2)], axis=1)  # N,2F


def flow_statistics(flow: Any, bins: int = 8) -> np.ndarray:
    """Fixed per-clip statistics of optical flow ``N,2,T,H,W`` -> ``N,bins+7``.

    Magnitude-weighted direction histogram (``bins`` sectors), mean flow direction
    (u, v), mean curl and divergence (rotation, scaling), temporal std of the
    divergence (pulsing), turning of the per-frame mean flow (orbiting), log mean
    magnitude (moving or not) — every ratio normalized by the clip's mean magnitude.
    """
    f = _numpy(flow).astype(np.float64)  # N,2,T,H,W
    if f.ndim != 5 or f.shape[1] != 2:
        raise ValueError(f"flow must be N,2,T,H,W; got shape {f.shape}")
    u, v = f[:, 0], f[:, 1]  # N,T,H,W
    mag = np.hypot(u, v)
    norm = mag.mean(axis=(1, 2, 3)) + 1e-6  # N
    ang = np.arctan2(v, u)
    sector = np.floor((ang + np.pi) / (2 * np.pi) * bins).astype(np.int64) % bins
    hist = np.stack([(mag * (sector == b)).mean(axis=(1, 2, 3)) for b in range(bins)], 1)
    hist = hist / norm[:, None]  # N,bins
    du_dy, du_dx = np.gradient(u, axis=(2, 3))
    dv_dy, dv_dx = np.gradient(v, axis=(2, 3))
    curl = (dv_dx - du_dy).mean(axis=(2, 3))  # N,T
    div = (du_dx + dv_dy).mean(axis=(2, 3))  # N,T
    m = np.stack([u.mean(axis=(2, 3)), v.mean(axis=(2, 3))], -1)  # N,T,2
    if m.shape[1] > 1:
        cross = m[:, :-1, 0] * m[:, 1:, 1] - m[:, :-1, 1] * m[:, 1:, 0]  # N,T-1
        dots = np.linalg.norm(m[:, :-1], axis=-1) * np.linalg.norm(m[:, 1:], axis=-1)
        turn = (cross / (dots + 1e-12)).mean(axis=1)  # N
    else:
        turn = np.zeros(len(f))
    mean_uv = m.mean(axis=1) / norm[:, None]  # N,2
    scalars = [curl.mean(1) / norm, div.mean(1) / norm, div.std(1) / norm, turn, np.log(norm)]
    return np.concatenate([hist, mean_uv, np.stack(scalars, 1)], axis=1)


def reference_features(**modalities: Any) -> dict[str, np.ndarray]:
    """Fixed statistics of the raw ``audio`` and/or ``flow`` clips given (N,... each)."""
    out: dict[str, np.ndarray] = {}
    if modalities.get("audio") is not None:
        out["audio"] = audio_statistics(modalities["audio"])
    if modalities.get("flow") is not None:
        out["flow"] = flow_statistics(modalities["flow"])
    return out


def fixed_references(names: Sequence[str], context: Mapping[str, Any]) -> dict[str, Any]:
    """The fixed reference statistics named ``names``: given ones
    (``context["references"]``) or computed from the raw held-out clips in ``context``."""
    given = dict(context.get("references") or {})
    raw = {r: context.get(r) for r in names if r not in given}
    return {**given, **reference_features(**raw)}


def reference_rows(
    kind: str, names: Sequence[str], refs: Mapping[str, Any], n: int, suffix: str = ""
) -> dict[str, np.ndarray]:
    """Each named reference as ``N,D`` rows, checked present and ``n`` long; a missing
    one is a one-line error naming the context key (``<name><suffix>``)."""
    out = {}
    for r in names:
        if refs.get(r) is None:
            raise DataError(
                f"the {kind} fitness needs {r}{suffix}=... (the held-out clips' {r}) in its "
                f"context, or fitness.references without {r!r}"
            )
        raw_r = _numpy(refs[r])
        arr = as_embeddings(raw_r.reshape(len(raw_r), -1))
        if len(arr) != n:
            raise DataError(f"{kind} fitness: {n} embeddings but {len(arr)} {r} rows")
        out[r] = arr
    return out


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def signed_geomean(vals: Any) -> float:
    """Geometric mean of ``vals`` when all are > 0, else their minimum: continuous
    (both tend to 0 as the smallest value does) and signed, so an agreement below
    chance (AMI < 0) ranks below one at chance instead of tying with it at 0.

    >>> round(signed_geomean([0.04, 0.09]), 6), signed_geomean([0.3, -0.01])
    (0.06, -0.01)
    """
    v = np.asarray(vals, dtype=np.float64)
    if (v > 0).all():
        return float(np.exp(np.mean(np.log(v))))
    return float(v.min())
