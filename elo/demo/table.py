"""The demo's comparison table as Markdown (:func:`comparison_table`): one line per row,
the date, machine and timing of the run, and the oracle's candidates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _header(final_steps: int, seed: int, meta: Mapping[str, Any] | None) -> list[str]:
    lines = [
        f"Demo test split, linear probe, {final_steps} training steps per model, seed {seed}.",
    ]
    if meta:
        m = meta["machine"]
        lines.append(
            f"Run {meta['date']} on {m['cores']} cores ({m['cpu']}), load average "
            f"{m['load']} at the start and {m['load_end']} at the end; dataset style "
            f"{meta['style']}; rows {meta['jobs']} at a time, {meta['threads_per_row']} "
            f"torch thread(s) each."
        )
    return lines


def comparison_table(
    rows: list[dict[str, Any]],
    *,
    final_steps: int,
    seed: int,
    meta: Mapping[str, Any] | None = None,
) -> str:
    """The comparison as Markdown: one line per row (a reused row shows its seconds as
    ``reused``), then the date, machine and timing of ``meta`` and the oracle's
    candidates when there are."""
    nuisance = (meta or {}).get("nuisance_label", "identity")
    lines = _header(final_steps, seed, meta)
    lines += [
        "",
        f"| model | action top-1 | action balanced acc | {nuisance} top-1 (nuisance) "
        "| seconds (train + eval) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:  # seconds: this invocation's train + eval
        secs = "reused" if r.get("reused") else f"{r.get('seconds', float('nan')):.0f}"
        lines.append(
            f"| {r['model']} | {r['label']['top1']:.3f} | "
            f"{r['label']['balanced_accuracy']:.3f} | {r['identity']['top1']:.3f} | {secs} |"
        )
    for r in rows:
        if r.get("candidates"):
            picks = ", ".join(
                f"#{c['fitness_rank']} {c['task']} {c['top1']:.3f}" for c in r["candidates"]
            )
            lines += ["", f"Oracle candidates (fitness rank, task, action top-1): {picks}."]
    if meta:
        s = meta["seconds"]
        lines += [
            "",
            f"Seconds: data {s['data']:.0f}, search {s['search']:.0f}, rows {s['rows']:.0f} "
            f"(wall), total {s['total'] / 60:.1f} min.",
        ]
    return "\n".join(lines) + "\n"
