"""Steps 3 and 4 of the demo: train (or export) each row's encoder and probe it for
both labels (:func:`contender_row`), ``--jobs`` rows at a time, longest first
(:func:`run_rows`); each row's commands log to ``RUN/logs/<row>.log``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from elo.demo.options import PROBES, DemoOptions
from elo.demo.processes import console_script, first_line, row_env, run_parallel, run_step, say
from elo.demo.rows import single_keys

#: every ELo-model row is trained at this shared size (docs/learning.md)
FINAL_OVERRIDES = (
    "train.batch_size=16",
    "model.rgb.width=16",
    "model.flow.width=16",
    "model.audio.width=16",
)
RAW_RGB = "data.modalities.rgb.center_time=false"  # probes of the uncentred clips
#: the order rows start in (longest first, so the last ones to finish are short): many
#: active terms, then the one-objective trainings, then rows without training; a guess
#: from the terms each row trains, not a measurement
LONGEST_FIRST = (
    "evolved",
    "uniform",
    "uniform_tuned",
    "rlw",
    "uncertainty",
    "byol",
    "simsiam",
    "clip_byol",
    "clip_simsiam",
    "supervised",
    "single",
    "random",
    "pixels",
    "motion",
    "timemean",
    "frame",
)


def export_pixel_stats(out: Path, kind: str = "pixels") -> None:
    """A parameter-free reference encoder: ``pixels`` (mean colour per cell, motion
    energy, Lucas-Kanade flow per cell) or a
    :class:`~elo.evaluation.pixel_stats.ProbeFeatureEncoder` kind: what a probe can read
    from the clips without learning."""
    import torch

    from elo.evaluation import pixel_stats as ps
    from elo.train.export import save_encoder

    enc: torch.nn.Module
    if kind == "pixels":
        enc, builder, kwargs = ps.build_pixel_stats_encoder(), ps.PIXEL_STATS_BUILDER, {}
    else:
        enc = ps.build_probe_encoder(kind=kind)
        builder, kwargs = ps.PROBE_FEATURES_BUILDER, {"kind": kind}
    save_encoder(out, enc, builder=builder, kwargs=kwargs, input_info={"modality": "rgb"})


def _train(o: DemoOptions, key: str, extra: list[str], out: Path, encoder_dir: Path) -> bool:
    """Step 3 for one row: train (or export) its encoder unless ``encoder_dir`` holds
    one; True when it did."""
    if (encoder_dir / "encoder.yaml").exists():
        return False
    if extra == ["--pixels"]:
        export_pixel_stats(encoder_dir, key)
        return True
    baseline = "--objective" in extra
    steps = [] if "--steps" in extra else ["--steps", str(o.final_steps)]
    conf = [] if baseline else o.cfg  # baselines read configs/baseline/<name>.yaml
    opts = [] if baseline else ["--no-progress", *FINAL_OVERRIDES]
    cmd = [console_script("elo-train"), *conf, "--data", str(o.data), *steps, *o.seed_args]
    cmd += ["--out", str(out), *opts, *extra]
    run_step(cmd, o.row_log(key), env=row_env(o.row_threads), echo=False)
    return True


def _probe(o: DemoOptions, key: str, encoder_dir: Path, label: str, ev: Path) -> bool:
    """Step 4 for one row and one label: the linear probe unless ``ev`` holds its
    results; True when it ran."""
    if (ev / "results.json").exists():
        return False
    raw = [RAW_RGB] if key in PROBES else []  # appearance probes: uncentred RGB
    cmd = [console_script("elo-eval"), "--encoder", str(encoder_dir), "--data", str(o.data)]
    cmd += [*o.cfg, "--protocol", "linear", "--label", label, "--out", str(ev)]
    run_step([*cmd, *o.seed_args, *raw], o.row_log(key), env=row_env(o.row_threads), echo=False)
    return True


def contender_row(o: DemoOptions, key: str, name: str, extra: list[str]) -> dict[str, Any]:
    """Steps 3 and 4 for one row: train (or export) its encoder unless it exists, then
    probe it for both labels; the row of the comparison table. The commands' output goes
    to ``RUN/logs/<key>.log``; they run with :attr:`DemoOptions.row_threads` threads."""
    out = o.run / "models" / key
    encoder_dir = out / "final" if "--objective" in extra else out  # baselines: final/
    trained = _train(o, key, extra, out, encoder_dir)
    row: dict[str, Any] = {"key": key, "model": name, "dir": str(encoder_dir)}
    probed = False
    # "identity" holds the nuisance probe's results, whichever column it reads
    for field_, label in (("label", "label"), ("identity", o.nuisance_label)):
        ev = out / f"eval-{label}"
        probed = _probe(o, key, encoder_dir, label, ev) or probed
        row[field_] = json.loads((ev / "results.json").read_text())
    row["reused"] = not (trained or probed)
    return row


def rows_to_run(o: DemoOptions, table: Mapping[str, Any]) -> list[str]:
    """The rows to train and probe, longest first (:data:`LONGEST_FIRST`): the chosen
    contenders the table has, and the oracle's candidates when ``oracle`` is chosen."""
    keys = [k for k in o.contenders if k in table]
    if "oracle" in o.contenders:
        keys += [k for k in single_keys(o.oracle_k) if k in table and k not in keys]

    def order(key: str) -> int:
        base = "single" if key.startswith("single") else key
        return LONGEST_FIRST.index(base) if base in LONGEST_FIRST else len(LONGEST_FIRST)

    return sorted(keys, key=order)  # stable: single, single_2, ... keep their order


def run_rows(
    o: DemoOptions, table: Mapping[str, tuple[str, list[str]]], keys: Sequence[str], t0: float
) -> tuple[dict[str, dict[str, Any]], dict[str, Exception]]:
    """Steps 3 and 4 for ``keys``, :attr:`DemoOptions.jobs` rows at a time; prints each
    row's start and its seconds (or its failure with its log's tail) as it happens."""
    done: list[str] = []

    def task(key: str) -> Callable[[], dict[str, Any]]:
        def go() -> dict[str, Any]:
            say(f"row {key}: started (log: {o.row_log(key)})")
            t_row = time.time()
            row = contender_row(o, key, *table[key])
            return {**row, "seconds": time.time() - t_row}

        return go

    def report(key: str, row: dict[str, Any] | None, err: BaseException | None) -> None:
        done.append(key)
        so_far = f"{len(done)}/{len(keys)} rows, demo so far {(time.time() - t0) / 60:.1f} min"
        if row is not None:
            what = "reused" if row["reused"] else "train + eval"
            top1 = row["label"]["top1"]
            say(f"row {key}: {row['seconds']:.0f} s {what}, action top-1 {top1:.3f} ({so_far})")
        else:
            say(f"row {key} FAILED ({so_far}; the other rows go on): {first_line(err)}", err=True)

    return run_parallel([(k, task(k)) for k in keys], o.jobs, report)
