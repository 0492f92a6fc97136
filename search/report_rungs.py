"""The multi-fidelity part of a search report (search/fidelity.py, docs/search.md):
fitness per rung and generation (a table in ``report.md`` and ``rungs.png``) and a λ
heatmap of the search's best candidates (``best_lambda.png``), ranked by the rule
the strategy sees (highest rung reached, then fitness at that rung).

Written only for searches whose evaluations carry rungs (``search.rungs``); a
one-rung search's report is unchanged (search/report.py).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from elo.rundir import atomic_write_bytes
from elo.search.fidelity import rank_key

RUNGS_PNG, BEST_LAMBDA_PNG = "rungs.png", "best_lambda.png"
#: candidates shown in the λ heatmap of the best
TOP = 12


def _savefig(fig: Any, path: Path) -> None:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def has_rungs(records: list[dict[str, Any]]) -> bool:
    return any("rungs" in r for r in records)


def ranked(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Evaluated candidates, best first, by :func:`search.fidelity.rank_key`."""
    ok = [r for r in records if r.get("status") == "ok"]
    return sorted(ok, key=lambda r: rank_key(int(r.get("rung", 1)), r["fitness"]), reverse=True)


def rung_table(gens: dict[int, list[dict[str, Any]]]) -> list[str]:
    """One row per generation and rung: candidates scored there, best, median."""
    n = max((len(r.get("rungs", [])) for rs in gens.values() for r in rs), default=0)
    lines = [
        "| generation | rung | scored | best | median |",
        "|---:|---:|---:|---:|---:|",
    ]
    for g, rs in gens.items():
        for k in range(n):
            scored = [r["rungs"][k] for r in rs if len(r.get("rungs", [])) > k]
            ok = [v for v in scored if v is not None]
            b = f"{max(ok):.4f}" if ok else "n/a"
            m = f"{statistics.median(ok):.4f}" if ok else "n/a"
            lines.append(f"| {g + 1} | {k + 1} | {len(scored)} | {b} | {m} |")
    return lines


def plot_rungs(gens: dict[int, list[dict[str, Any]]], path: Path) -> None:
    """Each candidate's fitness across the rungs it reached, one panel per generation."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(gens), figsize=(3.2 * len(gens), 3.2), squeeze=False)
    for ax, (g, rs) in zip(axes[0], gens.items(), strict=True):
        for r in rs:
            ys = [v for v in r.get("rungs", []) if v is not None]
            ax.plot(range(1, len(ys) + 1), ys, "-o", ms=3, alpha=0.5)
        ax.set_title(f"generation {g + 1}")
        ax.set_xlabel("rung")
    axes[0][0].set_ylabel("fitness at the rung")
    _savefig(fig, path)
    plt.close(fig)


def plot_best_lambda(best: list[dict[str, Any]], terms: list[str], path: Path) -> None:
    """λ (terms × the best candidates, best first)."""
    import matplotlib.pyplot as plt
    import numpy as np

    data = np.array([[r["weights"][t] for r in best] for t in terms])
    fig, ax = plt.subplots(figsize=(max(3.0, 0.4 * len(best) + 2.0), 0.28 * len(terms) + 1.2))
    im = ax.imshow(data, aspect="auto", vmin=0, vmax=1, cmap="viridis")
    labels = [f"{r['generation'] + 1}.{r['index']}" for r in best]
    ax.set_xticks(range(len(best)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(terms)), terms, fontsize=7)
    ax.set_xlabel("candidate (generation.index), best first")
    ax.set_title("λ of the best candidates")
    fig.colorbar(im, ax=ax, fraction=0.03)
    _savefig(fig, path)
    plt.close(fig)


def rung_section(
    run_dir: Path, gens: dict[int, list[dict[str, Any]]], terms: list[str]
) -> list[str]:
    """The report's "Fitness per rung" section with its two plots."""
    records = [r for rs in gens.values() for r in rs]
    plot_rungs(gens, run_dir / RUNGS_PNG)
    best = ranked(records)[:TOP]
    lines = ["## Fitness per rung", "", f"![rungs]({RUNGS_PNG})", "", *rung_table(gens), ""]
    if best:
        plot_best_lambda(best, terms, run_dir / BEST_LAMBDA_PNG)
        lines += [
            f"## λ of the {len(best)} best candidates (highest rung, then fitness)",
            "",
            f"![best lambda]({BEST_LAMBDA_PNG})",
            "",
        ]
    return lines
