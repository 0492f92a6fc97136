"""benchmarks/bench_proxy.py: its figures (ρ, regret, seed sd, SNR) from known records,
its drawing of candidates as the search draws them, and its resumability."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_proxy", ROOT / "benchmarks/bench_proxy.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_proxy"] = mod
    spec.loader.exec_module(mod)
    return mod


def write(out: Path, meta: dict[str, Any], records: list[dict[str, Any]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "meta.json").write_text(json.dumps(meta))
    (out / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_figures_from_known_records(bench: ModuleType, tmp_path: Path) -> None:
    """Rung 1 ranks the candidates exactly as the final probe (ρ = 1, regret 0), rung 2
    exactly backwards (ρ = −1; the pick is the worst: regret 0.40 − 0.10). Seed sd:
    the RMS of the two noise candidates' sds (0.02 and 0.0346), their difference's sd
    0.02; final sd of uniform λ over 3 seeds 0.02."""
    probe = [0.30, 0.20, 0.25, 0.40, 0.10, 0.35]
    meta = {
        "seed": 0,
        "noise_candidates": 2,
        "fitnesses": ["xmodal"],
        "boot": 200,
        "metric": "balanced_accuracy",
        "data": "d",
        "config": "demo",
        "overrides": [],
        "proxy_set": [],
        "final_set": [],
        "final_steps": 5,
        "final_train": "final",
    }
    recs: list[dict[str, Any]] = []
    for i in range(6):
        origin = "seed:uniform" if i == 0 else "cma"
        recs.append({"kind": "candidate", "id": i, "origin": origin, "vector": [0.0]})
        recs.append(
            {
                "kind": "proxy",
                "cand": i,
                "seed": 0,
                "steps": [2, 4],
                "scores": {"xmodal": [2 * probe[i], -probe[i]]},
            }
        )
        recs.append({"kind": "final", "cand": i, "seed": 0, "balanced_accuracy": probe[i]})
    noise = {0: [0.60, 0.62, 0.64], 1: [0.40, 0.40, 0.46]}  # rung 1 at seeds 0 (above), 1, 2
    for c, vals in noise.items():
        for k in (1, 2):
            recs.append(
                {
                    "kind": "proxy",
                    "cand": c,
                    "seed": k,
                    "steps": [2, 4],
                    "scores": {"xmodal": [vals[k], None]},
                }
            )
    for s, acc in ((1, 0.32), (2, 0.28)):
        recs.append({"kind": "final", "cand": 0, "seed": s, "balanced_accuracy": acc})
    recs.append({"kind": "final", "cand": 5, "seed": 1, "error": "exit 1"})  # ignored
    write(tmp_path, meta, recs)
    s = bench.summarise(tmp_path)
    r1, r2 = s["rows"]
    assert s["final_sd"] == pytest.approx(0.02) and s["noise"] == [0, 1]
    ci = [r1["rho"], r1["lo"], r1["hi"], r2["rho"], r2["lo"], r2["hi"]]
    assert ci == pytest.approx([1.0, 1.0, 1.0, -1.0, -1.0, -1.0])
    assert (r1["pick"], r1["regret"], r2["pick"]) == (3, 0.0, 4)
    assert r2["regret"] == pytest.approx(0.30) and r2["regret_sd"] == pytest.approx(15.0)
    assert r1["seed_sd"] == pytest.approx(math.sqrt((0.02**2 + 0.0346410**2) / 2), rel=1e-5)
    assert r1["diff_sd"] == pytest.approx(0.02) and r1["n_seeds"] == 3
    f1 = [0.60, 0.40, 0.50, 0.80, 0.20, 0.70]
    assert r1["pop_sd"] == pytest.approx(np.std(f1, ddof=1))
    assert r1["snr"] == pytest.approx(r1["pop_sd"] / r1["seed_sd"])
    assert math.isnan(r2["seed_sd"])  # no seed repeats at rung 2
    text = bench.render(tmp_path)
    assert "| xmodal | 1 (2) | 6 | +1.00 [+1.00, +1.00] | c3 | 0.000 |" in text
    assert "| xmodal | 2 (4) | 6 | -1.00 [-1.00, -1.00] | c4 | 0.300 | 15.0 |" in text


class Fakes:
    """proxy_job / final_job stand-ins that record their calls: fitness = Σ λ (xmodal)
    and −Σ λ (zipf), final probe = mean λ + 0.01 · seed."""

    def __init__(self) -> None:
        self.proxy: list[tuple[int, int]] = []
        self.final: list[tuple[int, int]] = []
        self.fail_once = {(1, 4)}  # this final's first try fails

    def proxy_job(self, job: dict[str, Any]) -> dict[str, Any]:
        self.proxy.append((job["cand"], job["seed"]))
        total = sum(job["weights"].values()) + 0.001 * job["run_seed"]
        scores = {"xmodal": [total / 2, total], "zipf": [-total / 2, -total]}
        return {
            "kind": "proxy",
            "cand": job["cand"],
            "seed": job["seed"],
            "steps": [1, 2],
            "scores": scores,
            "run_seed": job["run_seed"],
            "seconds": 0.0,
        }

    def final_job(self, job: dict[str, Any]) -> dict[str, Any]:
        self.final.append((job["cand"], job["seed"]))
        if (job["cand"], job["seed"]) in self.fail_once:
            self.fail_once.clear()
            return {"kind": "final", "cand": job["cand"], "seed": job["seed"], "error": "exit 1"}
        acc = float(np.mean(list(job["weights"].values()))) + 0.01 * job["seed"]
        return {
            "kind": "final",
            "cand": job["cand"],
            "seed": job["seed"],
            "top1": acc,
            "balanced_accuracy": acc,
            "train_seconds": 0.0,
            "eval_seconds": 0.0,
        }


def fake_study(bench: ModuleType, out: Path, seed_points: bool) -> Any:
    from elo.config import load_config
    from elo.search.settings import SearchSettings
    from elo.search.space import WeightSpace

    cfg = load_config("demo", [f"search.seed_points={str(seed_points).lower()}"])
    settings = SearchSettings.from_config(cfg)
    space = WeightSpace.from_config(cfg)
    sections: dict[str, dict[str, Any]] = {"xmodal": {}, "zipf": {}}
    return bench.Study(cfg, settings, space, out, [1, 2], sections, "xmodal", out)


def _first_run(
    bench: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Fakes, Path, list[str]]:
    """A study of 12 candidates with the fakes (final (1, 4) fails): the fakes, its
    folder and its arguments."""
    fakes = Fakes()
    out = tmp_path / "out"
    monkeypatch.setattr(bench, "proxy_job", fakes.proxy_job)
    monkeypatch.setattr(bench, "final_job", fakes.final_job)
    monkeypatch.setattr(bench, "make_dataset", lambda args: tmp_path)
    monkeypatch.setattr(bench, "ensure_trunks", lambda st, args, seeds: None)
    monkeypatch.setattr(bench, "study", lambda args, root, o: fake_study(bench, o, True))
    opts = "--candidates 12 --perturb 3 --proxy-seeds 3 --final-seeds 2 --seed-points "
    opts += "--fitnesses xmodal zipf --seed 4 --boot 100"
    argv = ["--out", str(out), *opts.split()]
    assert bench.main(argv) == 0
    return fakes, out, argv


def test_draws_the_search_generation_then_perturbations(
    bench: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from elo.search.strategies import strategy_for

    fakes, out, _ = _first_run(bench, tmp_path, monkeypatch)
    recs = bench.read_records(out)
    cands = [r for r in recs if r["kind"] == "candidate"]
    assert [c["id"] for c in cands] == list(range(12))
    # the first generation is the search's own (strategy_for with the experiment seed)
    st = fake_study(bench, out, True)
    import dataclasses

    search = strategy_for(dataclasses.replace(st.settings, population=9), st.space, seed=4).ask()
    assert [c["vector"] for c in cands[:9]] == search
    assert [c["origin"] for c in cands[:2]] == ["seed:uniform", "seed:alignment"]
    assert cands[0]["weights"] == {t: 1.0 for t in st.space.terms}
    # perturbations of the first generation's best by the profile fitness (max Σ λ)
    best = max(cands[:9], key=lambda c: sum(c["weights"].values()))
    assert all(c["origin"] == f"perturb:{best['id']}" for c in cands[9:])
    dist = [np.abs(np.subtract(c["vector"], best["vector"])).max() for c in cands[9:]]
    assert 0 < max(dist) < 6 * st.settings.sigma / 2
    # every candidate at seed 0; noise candidates (uniform + first CMA sample) at 1, 2
    noise = [0, 8]  # 8 = 1 uniform + 7 task seed points
    assert sorted(fakes.proxy) == sorted(
        [(i, 0) for i in range(12)] + [(c, k) for c in noise for k in (1, 2)]
    )
    assert sorted(fakes.final) == sorted([(i, 4) for i in range(12)] + [(0, 5)])
    table = capsys.readouterr().out
    assert "| xmodal | 2 (2) | 11 | +1.00 [+1.00, +1.00] |" in table  # c1 failed: left out
    assert "FAILED: exit 1" in table and (out / "table.md").read_text() in table


def test_a_rerun_does_only_missing_work_and_refuses_other_work(
    bench: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    fakes, out, argv = _first_run(bench, tmp_path, monkeypatch)
    capsys.readouterr()  # the first run's table
    # a rerun tries the failed final again, and nothing else
    fakes.proxy.clear()
    fakes.final.clear()
    assert bench.main(argv) == 0
    assert (fakes.proxy, fakes.final) == ([], [(1, 4)])
    assert "| xmodal | 2 (2) | 12 | +1.00 [+1.00, +1.00] |" in capsys.readouterr().out
    # then nothing at all, and prints the same table
    fakes.final.clear()
    assert bench.main(argv) == 0
    assert (fakes.proxy, fakes.final) == ([], [])
    # work lost to a kill (its record never written) is done again, only it
    lines = (out / "records.jsonl").read_text().splitlines()
    last = json.loads(lines[-1])
    assert last["kind"] == "final" and "error" not in last
    (out / "records.jsonl").write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:20])
    assert bench.main(argv) == 0
    assert (fakes.proxy, fakes.final) == ([], [(last["cand"], last["seed"])])
    fakes.final.clear()
    assert bench.main(argv) == 0  # and its record was kept after the torn line
    assert (fakes.proxy, fakes.final) == ([], [])
    # --table-from re-renders from the folder alone
    capsys.readouterr()
    assert bench.main(["--table-from", str(out)]) == 0
    assert capsys.readouterr().out.strip() == (out / "table.md").read_text().strip()
    # another definition of the work in the same folder: one line, exit 2
    with pytest.raises(SystemExit) as exc:
        bench.main([*argv[:3], "16", *argv[4:]])
    assert exc.value.code == 2
    assert "candidates=12, not 16" in capsys.readouterr().err


@pytest.mark.slow
def test_a_tiny_real_run_prints_its_table_and_resumes(bench: ModuleType, tmp_path: Path) -> None:
    """The real path end to end on a tiny dataset: proxy runs from a warm-start trunk
    with rungs, elo-train and elo-eval subprocesses, the table; a rerun does no work."""
    import subprocess

    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "benchmarks/bench_proxy.py"), "--out", str(out)]
    cmd += ["--data", str(tmp_path / "data"), "--clips", "32", "--candidates", "3"]
    cmd += ["--perturb", "1", "--proxy-steps", "2", "--final-steps", "1"]
    cmd += ["--proxy-seeds", "2", "--final-seeds", "1", "--seed-points"]
    cmd += ["--fitnesses", "xpredict", "weak", "--threads", "1", "--boot", "20"]
    cmd += ["objective.modalities=[rgb,flow]", "objective.tasks=[reconstruction]"]
    cmd += ["search.warm_start_steps=1"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    recs = bench.read_records(out)
    kinds = [r["kind"] for r in recs]
    assert (kinds.count("candidate"), kinds.count("proxy"), kinds.count("final")) == (3, 4, 3)
    proxy = [r for r in recs if r["kind"] == "proxy"]
    assert all(r["steps"] == [1, 2] and set(r["scores"]) == {"xpredict", "weak"} for r in proxy)
    finals = [r for r in recs if r["kind"] == "final"]
    assert all("error" not in r and 0.0 <= r["balanced_accuracy"] <= 1.0 for r in finals)
    assert (out / "trunks/seed0/warm_start.pt").exists()
    assert "| xpredict | 2 (2) | 3 |" in first.stdout
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0
    assert "4 proxy runs and 3 finals already done" in again.stdout
    assert len(bench.read_records(out)) == len(recs)
