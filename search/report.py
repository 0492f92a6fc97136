"""Plots and a markdown report of a search run directory (matplotlib, Agg backend).

* ``fitness.png``: every evaluation's fitness per generation, with best and median
  lines; failed trials are marked at the bottom.
* ``lambda.png``: λ per generation as heatmaps (terms × generations): the mean over
  the generation, and the generation's best individual.
* ``clusters.png``: the best candidate's sorted k-means cluster sizes against the Zipf
  law the fitness compares them with (ELo, Piergiovanni et al., CVPR 2020, §3.3).
* ``report.md``: settings, a table per generation, the best weights, failures.
* with ``search.rungs``: fitness per rung and generation (``rungs.png`` and a table)
  and a λ heatmap of the best candidates, ranked by the rule the strategy sees
  (highest rung reached, then fitness at that rung; search/fidelity.py). A one-rung
  search's report has neither.

Everything is read back from the run directory, so a report can be rebuilt at any
time: ``python -c "from elo.search.report import write_report; write_report('runs/x')"``.
"""

from __future__ import annotations

import io
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from elo.rundir import atomic_write_bytes, atomic_write_text, read_jsonl
from elo.search.fidelity import rank_key

FITNESS_PNG, LAMBDA_PNG, CLUSTERS_PNG, REPORT_MD = (
    "fitness.png",
    "lambda.png",
    "clusters.png",
    "report.md",
)
RUNGS_PNG, BEST_LAMBDA_PNG = "rungs.png", "best_lambda.png"
#: candidates shown in the λ heatmap of the best
TOP = 12


def _by_generation(records: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    gens: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        gens[int(r["generation"])].append(r)
    return dict(sorted(gens.items()))


def _best(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The best evaluation: highest rung reached, then fitness (search/fidelity.py)."""
    from elo.search.fidelity import rank_key

    ok = [r for r in records if r.get("status") == "ok"]
    return max(ok, key=lambda r: rank_key(int(r.get("rung", 1)), r["fitness"])) if ok else None


def _savefig(fig: Any, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def plot_fitness(gens: dict[int, list[dict[str, Any]]], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    xs, best, med = [], [], []
    ok_all = [r["fitness"] for rs in gens.values() for r in rs if r.get("status") == "ok"]
    floor = min(ok_all) if ok_all else 0.0
    for g, rs in gens.items():
        ok = [r["fitness"] for r in rs if r.get("status") == "ok"]
        bad = len(rs) - len(ok)
        ax.scatter([g + 1] * len(ok), ok, s=10, alpha=0.5, color="tab:blue")
        if bad:
            ax.scatter([g + 1] * bad, [floor] * bad, marker="x", color="tab:red", s=25)
        if ok:
            xs.append(g + 1)
            best.append(max(ok))
            med.append(statistics.median(ok))
    ax.plot(xs, best, "-o", color="tab:green", label="best")
    ax.plot(xs, med, "--", color="tab:orange", label="median")
    ax.set_xlabel("generation")
    ax.set_ylabel("fitness (higher is better)")
    ax.set_title("fitness per generation (x: failed trials)")
    ax.legend(loc="lower right")
    _savefig(fig, path)
    plt.close(fig)


def plot_lambda(gens: dict[int, list[dict[str, Any]]], terms: list[str], path: Path) -> None:
    import matplotlib.pyplot as plt
    import numpy as np

    mean = np.full((len(terms), len(gens)), np.nan)  # terms x generations
    top = np.full((len(terms), len(gens)), np.nan)
    for j, rs in enumerate(gens.values()):
        lam = np.array([[r["weights"][t] for t in terms] for r in rs])  # n x terms
        mean[:, j] = lam.mean(axis=0)
        b = _best(rs)
        if b is not None:
            top[:, j] = [b["weights"][t] for t in terms]
    h = max(2.5, 0.28 * len(terms) + 1.2)
    fig, axes = plt.subplots(1, 2, figsize=(2 * max(3.0, 0.5 * len(gens) + 2.5), h), sharey=True)
    for ax, data, title in ((axes[0], mean, "mean λ"), (axes[1], top, "best individual's λ")):
        im = ax.imshow(data, aspect="auto", vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(gens)), [str(g + 1) for g in gens])
        ax.set_xlabel("generation")
        ax.set_title(title)
    axes[0].set_yticks(range(len(terms)), terms, fontsize=7)
    fig.colorbar(im, ax=axes, fraction=0.03)
    _savefig(fig, path)
    plt.close(fig)


def plot_clusters(best: dict[str, Any], path: Path) -> bool:
    details = best.get("details") or {}
    sizes, zipf = details.get("sizes"), details.get("zipf")
    if not sizes or not zipf:
        return False
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.4))
    ranks = range(1, len(sizes) + 1)
    ax.bar(ranks, sizes, color="tab:blue", alpha=0.7, label="cluster sizes (sorted)")
    ax.plot(range(1, len(zipf) + 1), zipf, "-o", color="tab:red", ms=3, label="Zipf law")
    ax.set_xlabel("cluster rank")
    ax.set_ylabel("clips")
    ax.set_title(f"best candidate (fitness {best['fitness']:.4f}): clusters vs Zipf")
    ax.legend()
    _savefig(fig, path)
    plt.close(fig)
    return True


def write_report(run_dir: str | Path) -> Path:
    """(Re)write the plots and ``report.md`` of ``run_dir``; returns the report's path."""
    import matplotlib

    matplotlib.use("Agg")
    run_dir = Path(run_dir)
    records = list(read_jsonl(run_dir / "evaluations.jsonl"))
    errors = {e["trial_id"]: e.get("error", "") for e in read_jsonl(run_dir / "errors.jsonl")}
    from elo.search.rundir import load_run_config

    cfg = load_run_config(run_dir)
    terms = _terms(run_dir, records)
    search = cfg["search"]
    lines = [
        f"# Search report: {run_dir.name}",
        "",
        f"- strategy **{search['strategy']}**, population {search['population']},"
        f" generations {search['generations']}, mapping {search['mapping']},"
        f" fitness **{cfg['fitness']['kind']}**, seed {cfg['seed']}",
        f"- evaluations: {len(records)} ({sum(r.get('status') != 'ok' for r in records)} failed),"
        f" {len(terms)} loss terms",
        "",
    ]
    if records:
        lines += _generation_section(run_dir, _by_generation(records), terms)
    if has_rungs(records):  # search.rungs (search/report_rungs.py)
        lines += rung_section(run_dir, _by_generation(records), terms)
    best = _best(records)
    if best is not None:
        lines += _best_section(run_dir, best)
    failed = [r for r in records if r.get("status") != "ok"]
    if failed:
        lines += ["## Failed trials (given the worst fitness)", ""]
        for r in failed:
            why = errors.get(r.get("trial_id", ""), "") or r.get("error", "") or r["status"]
            lines.append(f"- generation {r['generation'] + 1}, individual {r['index']}: {why}")
        lines.append("")
    return atomic_write_text(run_dir / REPORT_MD, "\n".join(lines))


def _terms(run_dir: Path, records: list[dict[str, Any]]) -> list[str]:
    """The loss terms in the search's own order (the log's keys are sorted)."""
    terms = list(records[0]["weights"]) if records else []
    state_path = run_dir / "search_state.json"
    if state_path.exists():
        saved = json.loads(state_path.read_text(encoding="utf-8")).get("terms")
        if isinstance(saved, list) and sorted(saved) == sorted(terms):
            terms = saved
    return terms


def _generation_section(
    run_dir: Path, gens: dict[int, list[dict[str, Any]]], terms: list[str]
) -> list[str]:
    """The fitness and λ plots and the table per generation."""
    plot_fitness(gens, run_dir / FITNESS_PNG)
    plot_lambda(gens, terms, run_dir / LAMBDA_PNG)
    lines = [
        "## Fitness per generation",
        "",
        f"![fitness]({FITNESS_PNG})",
        "",
        "| generation | evaluated | failed | best | median | mean s/trial |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for g, rs in gens.items():
        ok = [r["fitness"] for r in rs if r.get("status") == "ok"]
        secs = statistics.mean(float(r.get("seconds", 0.0)) for r in rs)
        top = _best(rs)  # highest rung, then fitness (search/fidelity.py)
        b = f"{top['fitness']:.4f}" if top is not None else "n/a"
        m = f"{statistics.median(ok):.4f}" if ok else "n/a"
        lines.append(f"| {g + 1} | {len(rs)} | {len(rs) - len(ok)} | {b} | {m} | {secs:.1f} |")
    return [*lines, "", "## λ per generation", "", f"![lambda]({LAMBDA_PNG})", ""]


def _best_section(run_dir: Path, best: dict[str, Any]) -> list[str]:
    """The best candidate's λ table and its cluster plot (when its fitness has one)."""
    lines = [
        "## Best candidate",
        "",
        f"fitness {best['fitness']:.4f} (generation {best['generation'] + 1}, individual "
        f"{best['index']}); `best_weights.json` holds it for `elo-train --weights`.",
        "",
        "| term | λ |",
        "|---|---:|",
    ]
    lines += [
        f"| `{t}` | {v:.3f} |" for t, v in sorted(best["weights"].items(), key=lambda kv: -kv[1])
    ]
    lines.append("")
    if plot_clusters(best, run_dir / CLUSTERS_PNG):
        lines += [f"![clusters vs Zipf]({CLUSTERS_PNG})", ""]
    return lines


# -- the multi-fidelity part (search.rungs; search/fidelity.py, docs/search.md) --------


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
