"""Complete experiment configs for tests that build a model or a loader from a few
settings: every key the code reads is present (its default from configs/), and the
demo profile's own choices are undone so a test states what it depends on."""

from __future__ import annotations

from typing import Any


def bare_experiment(**sections: Any) -> dict[str, Any]:
    """The demo experiment without its demo-specific choices (no per-modality or head
    options, every task, no distillation, clips cut uniformly with nothing cached
    beyond them, the train section of configs/train/proxy.yaml), then ``sections``
    deep-merged on top, e.g. ``bare_experiment(data={"clip": {"size": 8}})``."""
    from elo.config import deep_merge, load_config, load_part

    cfg = load_config("demo")
    cfg["data"]["modalities"] = {}
    cfg["data"]["clip"].update(extra_frames=0, extra_pixels=0, sampling="uniform")
    cfg["heads"] = {}
    cfg["objective"].update(tasks="all", exclude=[])
    cfg["objective"]["distill"]["teachers"] = []
    cfg["train"] = load_part("train", "proxy")
    return deep_merge(cfg, sections)
