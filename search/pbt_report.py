"""The report of a population-based search (search/pbt.py), read back from its run
directory (``evaluations.jsonl``, ``config.yaml``, ``best_schedule.json``), so it can
be rebuilt at any time::

    python -c "from elo.search.pbt_report import write_pbt_report as w; w('runs/x')"

* ``pbt_fitness.png``: each member's fitness per interval; a copy is a dashed line from
  the source's point to the copier's next one; rejected intervals are crosses.
* ``pbt_lambda.png``: λ over time, one heatmap (terms × intervals) per member.
* ``pbt_lineage.png``: who copied whom (members × intervals), the best member's
  lineage in bold.
* ``report.md``: the settings, fitness per interval and member, the copies, the best
  member and its λ schedule, the rejected intervals.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from elo.rundir import atomic_write_bytes, atomic_write_text, read_jsonl
from elo.search.pbt_log import EVALUATIONS, by_key

FITNESS_PNG, LAMBDA_PNG, LINEAGE_PNG, REPORT_MD = (
    "pbt_fitness.png",
    "pbt_lambda.png",
    "pbt_lineage.png",
    "report.md",
)


def _savefig(fig: Any, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def _members(records: list[dict[str, Any]]) -> list[int]:
    return sorted({int(r["member"]) for r in records})


def plot_fitness(records: list[dict[str, Any]], path: Path) -> None:
    import matplotlib.pyplot as plt

    keyed = by_key(records)
    ok = [r["fitness"] for r in records if r["status"] == "ok"]
    floor = min(ok) if ok else 0.0
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for m in _members(records):
        rs = sorted((r for r in records if r["member"] == m), key=lambda r: r["interval"])
        xs = [r["interval"] for r in rs if r["status"] == "ok"]
        (line,) = ax.plot(
            xs, [r["fitness"] for r in rs if r["status"] == "ok"], "-o", ms=3, label=f"member {m}"
        )
        bad = [r["interval"] for r in rs if r["status"] != "ok"]
        ax.scatter(bad, [floor] * len(bad), marker="x", color=line.get_color(), s=30)
        for r in rs:
            p = r.get("parent")
            src = keyed.get((p["member"], p["interval"])) if r["copied"] and p else None
            if src is not None and src["status"] == "ok" and r["status"] == "ok":
                ax.plot(
                    [src["interval"], r["interval"]],
                    [src["fitness"], r["fitness"]],
                    "--",
                    color=line.get_color(),
                    lw=0.8,
                )
    ax.set_xlabel("interval")
    ax.set_ylabel("fitness (higher is better)")
    ax.set_title("fitness per interval (dashed: copied; x: rejected)")
    ax.legend(fontsize=7, loc="lower right")
    _savefig(fig, path)
    plt.close(fig)


def plot_lambda(records: list[dict[str, Any]], terms: list[str], path: Path) -> None:
    import matplotlib.pyplot as plt
    import numpy as np

    members = _members(records)
    n = max(int(r["interval"]) for r in records)
    fig, axes = plt.subplots(
        1,
        len(members),
        squeeze=False,
        sharey=True,
        figsize=(1.2 + 0.45 * n * len(members) + 1.5, 0.26 * len(terms) + 1.4),
    )
    im = None
    for ax, m in zip(axes[0], members, strict=True):
        data = np.full((len(terms), n), np.nan)
        for r in records:
            if r["member"] == m:
                data[:, int(r["interval"]) - 1] = [r["weights"][t] for t in terms]
        im = ax.imshow(data, aspect="auto", vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(n), [str(k + 1) for k in range(n)], fontsize=7)
        ax.set_title(f"member {m}", fontsize=8)
        ax.set_xlabel("interval", fontsize=7)
    axes[0][0].set_yticks(range(len(terms)), terms, fontsize=6)
    if im is not None:
        fig.colorbar(im, ax=axes, fraction=0.02, label="λ")
    _savefig(fig, path)
    plt.close(fig)


def plot_lineage(records: list[dict[str, Any]], best: list[tuple[int, int]], path: Path) -> None:
    import matplotlib.pyplot as plt

    members = _members(records)
    on_best = set(best)
    fig, ax = plt.subplots(figsize=(6.5, 0.5 * len(members) + 1.5))
    for r in records:
        m, k = int(r["member"]), int(r["interval"])
        color = "tab:red" if r["status"] != "ok" else "tab:blue"
        ax.scatter([k], [m], color=color, s=40 if (m, k) in on_best else 14, zorder=3)
        p = r.get("parent")
        if p is not None:
            bold = (m, k) in on_best and (p["member"], p["interval"]) in on_best
            ax.annotate(
                "",
                xy=(k, m),
                xytext=(p["interval"], p["member"]),
                arrowprops={
                    "arrowstyle": "->",
                    "lw": 2.2 if bold else 0.8,
                    "color": "black" if bold else "grey",
                },
            )
    ax.set_yticks(members, [f"member {m}" for m in members], fontsize=7)
    ax.set_xlabel("interval")
    ax.set_title("lineage: arrows from the state each interval started from (bold: best)")
    _savefig(fig, path)
    plt.close(fig)


def write_pbt_report(run_dir: str | Path) -> Path:
    """(Re)write the plots and ``report.md`` of ``run_dir``; returns the report's path."""
    import matplotlib

    from elo.search.rundir import load_run_config
    from elo.search.settings import SearchSettings

    matplotlib.use("Agg")
    run_dir = Path(run_dir)
    records = list(read_jsonl(run_dir / EVALUATIONS))
    cfg = load_run_config(run_dir)
    settings = SearchSettings.from_config(cfg)
    pbt = settings.pbt
    sched_path = run_dir / "best_schedule.json"
    schedule = json.loads(sched_path.read_text(encoding="utf-8")) if sched_path.exists() else None
    lines = [
        f"# Search report: {run_dir.name}",
        "",
        f"- strategy **{settings.strategy}** (population-based training), population "
        f"{pbt.population}, {pbt.steps} steps per member, interval {pbt.interval}, quantile "
        f"{pbt.quantile:g}, fitness **{cfg['fitness']['kind']}**, seed {cfg['seed']}",
        f"- member intervals logged: {len(records)} "
        f"({sum(r['status'] != 'ok' for r in records)} rejected), "
        f"{sum(bool(r['copied']) for r in records)} copies",
        "",
    ]
    if not records:
        return atomic_write_text(run_dir / REPORT_MD, "\n".join(lines))
    terms = list(records[0]["weights"])
    best = [(int(x["member"]), int(x["interval"])) for x in (schedule or {}).get("lineage", [])]
    plot_fitness(records, run_dir / FITNESS_PNG)
    plot_lambda(records, terms, run_dir / LAMBDA_PNG)
    plot_lineage(records, best, run_dir / LINEAGE_PNG)
    lines += ["## Fitness per interval", "", f"![fitness]({FITNESS_PNG})", ""]
    lines += _fitness_table(records)
    lines += ["", "## Lineage (who copied whom)", "", f"![lineage]({LINEAGE_PNG})", ""]
    lines += _copies(records)
    lines += ["", "## λ over time per member", "", f"![lambda]({LAMBDA_PNG})", ""]
    if schedule is not None:
        lines += _best_section(schedule, terms)
    rejected = [r for r in records if r["status"] != "ok"]
    if rejected:
        lines += ["## Rejected intervals (worst fitness; replaced by copying, never copied)", ""]
        lines += [
            f"- member {r['member']}, interval {r['interval']}: {r['status']}"
            + (f" ({r['error']})" if r.get("error") else "")
            for r in rejected
        ]
        lines.append("")
    return atomic_write_text(run_dir / REPORT_MD, "\n".join(lines))


def _fitness_table(records: list[dict[str, Any]]) -> list[str]:
    keyed = by_key(records)
    members = _members(records)
    n = max(int(r["interval"]) for r in records)
    out = [
        "| interval | " + " | ".join(f"member {m}" for m in members) + " |",
        "|---:|" + "---:|" * len(members),
    ]
    for k in range(1, n + 1):
        cells = []
        for m in members:
            r = keyed.get((m, k))
            if r is None:
                cells.append("")
            elif r["status"] != "ok":
                cells.append(r["status"])
            else:
                cells.append(
                    f"{r['fitness']:.4f}" + (f" ←{r['parent']['member']}" if r["copied"] else "")
                )
        out.append(f"| {k} | " + " | ".join(cells) + " |")
    out.append("")
    out.append(
        "`←m`: the member copied member m's weights, optimizer state and λ (explored) first."
    )
    return out


def _copies(records: list[dict[str, Any]]) -> list[str]:
    copies = sorted((r for r in records if r["copied"]), key=lambda r: (r["interval"], r["member"]))
    if not copies:
        return ["No member copied another."]
    return [
        f"- after interval {r['parent']['interval']}: member {r['member']} copied member "
        f"{r['parent']['member']}"
        for r in copies
    ]


def _best_section(schedule: dict[str, Any], terms: list[str]) -> list[str]:
    rows = schedule.get("schedule", [])
    lines = [
        "## Best member",
        "",
        f"member {schedule.get('member')}, fitness {schedule.get('fitness', float('nan')):.4f} "
        f"after {schedule.get('steps')} steps; its RGB encoder is in `final/` "
        "(`elo.load_encoder`), its λ schedule in `best_schedule.json` (`elo-train --weights`).",
        "",
        "| term | " + " | ".join(f"from step {r['from_step']}" for r in rows) + " |",
        "|---|" + "---:|" * len(rows),
    ]
    lines += [
        f"| `{t}` | " + " | ".join(f"{r['weights'][t]:.3f}" for r in rows) + " |" for t in terms
    ]
    return [*lines, ""]
