"""What the search stands on: does a candidate's proxy fitness predict the model its λ
gives after the final training?

Candidates are drawn as a search draws them (the configured strategy's first
generation over the configured space, with the seed points when
``search.seed_points`` / ``--seed-points`` is on, uniform λ = 1 always among them),
then ``--perturb`` Gaussian perturbations (in vector space) of the first
generation's best by the profile's fitness at the top rung. Each candidate is
proxy-trained exactly as a search trial (:func:`search.trainable.rung_reports`: the
warm-start trunk when the profile has one, ``search.paired``, the proxy steps, every
rung) and scored at each rung by every fitness of ``--fitnesses`` on that one trained
model. Each is also trained at the final budget with the demo's recipe
(``elo-train --train final`` with ``elo.demo.FINAL_OVERRIDES``, ``--final-steps``) and
probed as the demo table probes (``elo-eval --protocol linear``, test split).

Printed per fitness and rung: Spearman ρ (fitness vs final probe) with a bootstrap
95 % CI over candidates; the regret of the top-fitness pick (best final probe − the
pick's); the fitness's seed sd (the noise candidates over ``--proxy-seeds`` seeds,
each seed a whole search's randomness: trunk, batches, views, initial weights) against
the population's sd (SNR = population sd / seed sd), and the sd over seeds of the
difference between the two noise candidates (what common random numbers leave); and
the final probe's own sd over ``--final-seeds`` seeds of uniform λ, against which the
regret is read.

Resumable: every proxy score and final probe is a line of ``OUT/records.jsonl``,
appended when it finishes (final trainings resume from their checkpoint); a rerun
skips finished work. ``--table-from OUT`` only re-renders the table.

    python benchmarks/bench_proxy.py --out runs/bench-proxy/a --data data/bench-proxy-a
    python benchmarks/bench_proxy.py --out runs/bench-proxy/c --data data/bench-proxy-c \\
        --style c --gen-seed 1
    python benchmarks/bench_proxy.py --out runs/bench-proxy/a-paired --data data/bench-proxy-a \\
        --proxy-set search.paired=true              # a lever; key=value (both) / --final-set
    python benchmarks/bench_proxy.py --table-from runs/bench-proxy/a

Long runs go through ../shared/bin/cpu-slot. ``--jobs 2`` runs two trainings at once
(one torch thread each unless ``--threads``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

RECORDS = "records.jsonl"
META = "meta.json"
TABLE = "table.md"
#: the arguments that define the work in OUT: a rerun with others is refused
DEFINING = (
    "config",
    "data",
    "overrides",
    "proxy_set",
    "final_set",
    "candidates",
    "perturb",
    "perturb_sigma",
    "fitnesses",
    "proxy_steps",
    "seed_points",
    "seed",
    "independent",
    "final_steps",
    "final_train",
    "noise_candidates",
)


# -- records --------------------------------------------------------------------------
def fail(message: str) -> None:
    """A mistake in the arguments: one line on stderr, exit 2."""
    print(f"bench_proxy: {message}", file=sys.stderr)
    raise SystemExit(2)


def read_records(out: Path) -> list[dict[str, Any]]:
    """Every finished piece of work (a torn last line of a killed run is skipped)."""
    path = out / RECORDS
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def append_record(out: Path, rec: dict[str, Any]) -> None:
    """One line, flushed to disk; after a line torn by a kill, on a line of its own."""
    path = out / RECORDS
    torn = False
    if path.exists() and path.stat().st_size:
        with open(path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            torn = fh.read(1) != b"\n"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(("\n" if torn else "") + json.dumps(rec, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def check_meta(out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``OUT/meta.json``: written on the first run; a rerun must define the same work."""
    meta = {k: getattr(args, k) for k in DEFINING}
    meta["data"] = str(Path(args.data).resolve())
    path = out / META
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        diff = [k for k in DEFINING if old.get(k) != meta[k]]
        if diff:
            k = diff[0]
            fail(
                f"{path} was made with {k}={old.get(k)!r}, not {meta[k]!r}; "
                "rerun with the same arguments or choose a new --out"
            )
    out.mkdir(parents=True, exist_ok=True)
    meta.update(metric=args.metric, boot=args.boot, style=args.style, gen_seed=args.gen_seed)
    path.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return meta


# -- set-up ---------------------------------------------------------------------------
def make_dataset(args: argparse.Namespace) -> Path:
    """The demo dataset (generated once with ``--style`` / ``--gen-seed``)."""
    from elo.data.demo_data import make_demo

    root = Path(args.data)
    if not (root / "labels.csv").exists():
        print(
            f"making the demo dataset (style {args.style}, {args.clips} clips, seed "
            f"{args.gen_seed}) in {root} ...",
            flush=True,
        )
        make_demo(
            root,
            clips=args.clips,
            seed=args.gen_seed,
            workers=args.threads or None,
            style=args.style,
        )
    return root.resolve()


def proxy_config(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """The config elo-search would use with these flags (search/cli.py), the shared and
    the proxy overrides, modalities no clip has dropped as elo-search drops them."""
    from elo.search.cli import resolve_config
    from elo.search.prepare import drop_absent_modalities

    ns = argparse.Namespace(
        config=args.config,
        data=str(root),
        population=None,
        generations=None,
        strategy=None,
        fitness=None,
        steps=args.proxy_steps,
        workers=None,
        seed_points=args.seed_points,
        seed=args.seed,
        overrides=[*args.overrides, *args.proxy_set],
    )
    cfg = resolve_config(ns)
    drop_absent_modalities(cfg, lambda line: print(line, flush=True))
    return cfg


def fitness_sections(cfg: dict[str, Any], names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``configs/fitness/<name>.yaml`` per name, references limited to the config's
    modalities; the profile's own fitness is the one its section names."""
    from elo.model.modality import configured_modalities
    from elo.search.settings import fitness_section

    mods = set(configured_modalities(cfg))
    own = dict(cfg.get("fitness") or {})
    out = {}
    for name in names:
        sec = own if own.get("kind") == name else fitness_section(name)
        if isinstance(sec.get("references"), list):
            sec = {**sec, "references": [m for m in sec["references"] if m in mods]}
            if not sec["references"]:
                print(f"bench_proxy: fitness {name} has no reference modality here; skipped")
                continue
        out[name] = sec
    return out


@dataclasses.dataclass
class Study:
    """Everything the proxy runs share."""

    cfg: dict[str, Any]
    settings: Any
    space: Any
    root: Path
    rungs: list[int]
    sections: dict[str, dict[str, Any]]
    profile_fitness: str
    out: Path


def study(args: argparse.Namespace, root: Path, out: Path) -> Study:
    from elo.search.fidelity import active_rungs, proxy_steps
    from elo.search.prepare import prepare_data
    from elo.search.settings import FitnessSettings, SearchSettings
    from elo.search.space import WeightSpace

    cfg = proxy_config(args, root)
    settings = SearchSettings.from_config(cfg)
    space = WeightSpace.from_config(cfg, settings.mapping)
    steps = proxy_steps(cfg, settings)
    rungs = active_rungs(FitnessSettings.from_config(cfg), settings, steps) or [steps]
    sections = fitness_sections(cfg, args.fitnesses)
    kind = str((cfg.get("fitness") or {}).get("kind"))
    profile = kind if kind in sections else next(iter(sections))
    refs = sorted({m for sec in sections.values() for m in sec.get("references", [])})
    prepare_data(cfg, str(root), settings.heldout_split, refs)  # every fitness's clips
    return Study(cfg, settings, space, root, rungs, sections, profile, out)


# -- candidates -----------------------------------------------------------------------
def first_generation(st: Study, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The strategy's first generation (seed points first when on), uniform λ = 1
    included: ``--candidates - --perturb`` of them."""
    from elo.search.strategies import strategy_for

    n = args.candidates - args.perturb
    settings = dataclasses.replace(st.settings, population=max(2, n))
    vectors = strategy_for(settings, st.space, seed=args.seed).ask()[:n]
    origins = ["cma" if settings.strategy == "cma" else settings.strategy] * len(vectors)
    if settings.seed_points:
        groups = ["uniform", *_seed_groups(st.space)]
        for i in range(min(len(groups), len(vectors))):
            origins[i] = f"seed:{groups[i]}"
    uniform = st.space.vector({t: 1.0 for t in st.space.terms})
    if not any(np.allclose(v, uniform) for v in vectors):
        vectors, origins = [uniform, *vectors[: n - 1]], ["seed:uniform", *origins[: n - 1]]
    return [
        {"id": i, "origin": o, "vector": [float(x) for x in v], "weights": st.space.weights(v)}
        for i, (v, o) in enumerate(zip(vectors, origins, strict=True))
    ]


def _seed_groups(space: Any) -> list[str]:
    from elo.model.terms import TermKey
    from elo.search.space import family_of

    def group(t: str) -> str:
        return family_of(t) if space.space == "families" else TermKey.parse(t).task

    return list(dict.fromkeys(group(t) for t in space.terms))


def perturbations(
    st: Study, args: argparse.Namespace, first: list[dict[str, Any]], best: dict[str, Any]
) -> list[dict[str, Any]]:
    """``--perturb`` points ``best + σ·N(0, I)`` in vector space (σ: ``--perturb-sigma``,
    default half of ``search.sigma``), seeded by the experiment seed."""
    sigma = args.perturb_sigma if args.perturb_sigma is not None else st.settings.sigma / 2
    rng = np.random.default_rng([int(args.seed), 7919])
    base = np.asarray(best["vector"], dtype=float)
    out = []
    for k in range(args.perturb):
        v = base + sigma * rng.standard_normal(len(base))
        out.append(
            {
                "id": len(first) + k,
                "origin": f"perturb:{best['id']}",
                "vector": [float(x) for x in v],
                "weights": st.space.weights(list(v)),
            }
        )
    return out


def top_value(rec: dict[str, Any] | None, fitness: str) -> float:
    """A proxy record's fitness at its top rung (−inf when rejected or missing)."""
    if rec is None:
        return -math.inf
    v = rec["scores"].get(fitness, [None])[-1]
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else -math.inf


# -- proxy runs -----------------------------------------------------------------------
def trunk_path(out: Path, seed: int) -> Path:
    return out / "trunks" / f"seed{seed}"


def ensure_trunks(st: Study, args: argparse.Namespace, seeds: Iterable[int]) -> None:
    """The warm-start trunk of each proxy seed (a search with that seed trains one),
    trained once into ``OUT/trunks/seed<S>/`` (search/warmstart.py)."""
    if not st.settings.warm_start:
        return
    import torch

    from elo.search.trainable import TrialContext
    from elo.search.warmstart import ensure_trunk, trunk_steps

    torch.set_num_threads(max(1, args.threads or torch.get_num_threads()))
    for seed in seeds:
        ctx = TrialContext.from_settings({**st.cfg, "seed": seed}, st.settings, str(st.root))
        ctx.threads = args.threads or torch.get_num_threads()
        where = trunk_path(st.out, seed)
        where.mkdir(parents=True, exist_ok=True)
        ensure_trunk(
            ctx, where, trunk_steps(st.settings, ctx.steps), lambda s: print(s, flush=True)
        )


def proxy_job(job: dict[str, Any]) -> dict[str, Any]:
    """One candidate's proxy run at one seed, scored by every fitness at every rung
    (runs in a worker process with ``--jobs`` > 1)."""
    import torch

    from elo.search.settings import FitnessSettings, SearchSettings
    from elo.search.trainable import TrialContext, rung_reports
    from elo.search.warmstart import TRUNK_FILE, load_trunk

    threads = int(job["threads"] or torch.get_num_threads())
    torch.set_num_threads(threads)
    cfg = {**job["cfg"], "seed": job["run_seed"]}
    ctx = TrialContext.from_settings(cfg, SearchSettings.from_config(cfg), job["root"])
    ctx.threads = threads
    if job["trunk"]:
        ctx.trunk = load_trunk(Path(job["trunk"]) / TRUNK_FILE)
    t0 = time.perf_counter()
    scores: dict[str, list[float | None]] = {name: [] for name in job["sections"]}
    rejected: dict[str, str] = {}
    stds: list[float | None] = []
    steps_done = []
    sections = {
        n: FitnessSettings.from_config({"fitness": sec}) for n, sec in job["sections"].items()
    }
    for steps, reps in rung_reports(ctx, job["weights"], sections, job["rungs"]):
        steps_done.append(steps)
        for name, rep in reps.items():
            v = rep.get("fitness")
            ok = isinstance(v, int | float) and math.isfinite(v)
            scores[name].append(float(v) if ok else None)
            if rep.get("rejected"):
                rejected.setdefault(name, str(rep["rejected"]))
        std = next(iter(reps.values())).get("metrics", {}).get("embedding_std")
        stds.append(float(std) if isinstance(std, int | float) else None)
    return {
        "kind": "proxy",
        "cand": job["cand"],
        "seed": job["seed"],
        "run_seed": job["run_seed"],
        "steps": steps_done,
        "scores": scores,
        "rejected": rejected,
        "embedding_std": stds,
        "seconds": time.perf_counter() - t0,
        "threads": threads,
    }


def run_seed(args: argparse.Namespace, cand: int, k: int) -> int:
    """The seed of candidate ``cand``'s ``k``-th proxy run: the search's seed + k (every
    candidate of one search shares it), or with ``--independent`` one per candidate."""
    base = int(args.seed) + k
    return base + 1000 + 7919 * k + cand if args.independent else base


def run_proxies(
    st: Study,
    args: argparse.Namespace,
    todo: list[tuple[dict[str, Any], int]],
    done: dict[tuple[int, int], dict[str, Any]],
) -> None:
    """Proxy runs ``(candidate, k)`` not in ``done``; each record appended as it ends."""
    todo = [(c, k) for c, k in todo if (c["id"], k) not in done]
    if not todo:
        return
    ensure_trunks(st, args, sorted({int(args.seed) + k for _, k in todo}))
    jobs = [
        {
            "cfg": st.cfg,
            "root": str(st.root),
            "sections": st.sections,
            "rungs": st.rungs,
            "weights": c["weights"],
            "cand": c["id"],
            "seed": k,
            "run_seed": run_seed(args, c["id"], k),
            "threads": args.threads,
            "trunk": str(trunk_path(st.out, int(args.seed) + k))
            if st.settings.warm_start
            else None,
        }
        for c, k in todo
    ]

    def finished(rec: dict[str, Any]) -> None:
        append_record(st.out, rec)
        done[(rec["cand"], rec["seed"])] = rec
        top = {n: (v[-1] if v else None) for n, v in rec["scores"].items()}
        print(
            f"proxy c{rec['cand']:03d} seed+{rec['seed']} {rec['seconds']:6.1f}s  "
            + "  ".join(f"{n} {_fmt(v)}" for n, v in top.items()),
            flush=True,
        )

    _run_all(proxy_job, jobs, args.jobs, finished)


def _fmt(v: Any) -> str:
    return f"{v:+.4f}" if isinstance(v, int | float) else "rejected"


def _run_all(
    fn: Callable[[dict[str, Any]], dict[str, Any]],
    jobs: list[dict[str, Any]],
    n: int,
    finished: Callable[[dict[str, Any]], None],
) -> None:
    """``fn`` over ``jobs``: in this process, or in ``n`` spawned worker processes."""
    if n <= 1:
        for job in jobs:
            finished(fn(job))
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=n, mp_context=ctx) as pool:
        futures = [pool.submit(fn, job) for job in jobs]
        for fut in as_completed(futures):
            finished(fut.result())


# -- final trainings ------------------------------------------------------------------
def final_job(job: dict[str, Any]) -> dict[str, Any]:
    """Train one candidate with the demo's final recipe and probe it (the demo's two
    commands, as subprocesses; elo-train resumes from its checkpoint). A command that
    fails gives a record with its ``error`` (left out of the table, tried again on the
    next run)."""
    folder = Path(job["dir"])
    train_dir, eval_dir = folder / "train", folder / "eval-label"
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "weights.json"
    weights.write_text(json.dumps({"weights": job["weights"]}), encoding="utf-8")
    env = dict(os.environ)
    if job["threads"]:
        env.update(OMP_NUM_THREADS=str(job["threads"]), MKL_NUM_THREADS=str(job["threads"]))
    common = ["--config", job["config"], "--data", job["root"], "--seed", str(job["seed"])]
    train = [_bin("elo-train"), *common, "--steps", str(job["steps"]), "--out", str(train_dir)]
    train += ["--train", job["train"], "--no-progress", "--weights", str(weights)]
    train += ["--resume"] if (train_dir / "checkpoint.pt").exists() else []
    probe = [_bin("elo-eval"), *common, "--encoder", str(train_dir), "--protocol", "linear"]
    probe += ["--label", "label", "--out", str(eval_dir), *job["eval_overrides"]]
    rec: dict[str, Any] = {"kind": "final", "cand": job["cand"], "seed": job["seed"]}
    rec["steps"] = job["steps"]
    t0 = time.perf_counter()
    try:
        if not (train_dir / "encoder.yaml").exists():
            _call([*train, *job["train_overrides"]], folder / "log.txt", env)
        t1 = time.perf_counter()
        if not (eval_dir / "results.json").exists():
            _call(probe, folder / "log.txt", env)
    except RuntimeError as exc:
        return {**rec, "error": str(exc)}
    res = json.loads((eval_dir / "results.json").read_text(encoding="utf-8"))
    rec.update(top1=float(res["top1"]), balanced_accuracy=float(res["balanced_accuracy"]))
    rec.update(train_seconds=t1 - t0, eval_seconds=time.perf_counter() - t1)
    return rec


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


#: the running elo-train / elo-eval subprocesses (stopped with the benchmark)
_CHILDREN: set[subprocess.Popen[bytes]] = set()
_STOPPING = threading.Event()


class Stopped(Exception):
    """The benchmark is stopping (SIGTERM / Ctrl-C): nothing is recorded."""


def _call(cmd: list[str], log: Path, env: dict[str, str]) -> None:
    if _STOPPING.is_set():
        raise Stopped
    with open(log, "a", encoding="utf-8") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        child = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        _CHILDREN.add(child)
        try:
            rc = child.wait()
        finally:
            _CHILDREN.discard(child)
    if _STOPPING.is_set():
        raise Stopped
    if rc != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-5:]
        raise RuntimeError(f"exit {rc}: {' '.join(cmd)}\n" + "\n".join(tail))


def final_overrides(st: Study, args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """elo-train's overrides (the demo's final sizes, the shared ones, ``--final-set``,
    and the modalities elo-search dropped) and elo-eval's (the ``data.*`` ones)."""
    from elo.config import load_config
    from elo.demo_options import FINAL_OVERRIDES
    from elo.model.modality import configured_modalities

    extra = [*args.overrides, *args.final_set]
    mods = configured_modalities(st.cfg)
    if mods != configured_modalities(load_config(args.config, extra)):
        extra.append(f"objective.modalities=[{','.join(mods)}]")
    train = [*FINAL_OVERRIDES, *extra]
    return train, [o for o in extra if o.startswith("data.")]


def run_finals(
    st: Study,
    args: argparse.Namespace,
    todo: list[tuple[dict[str, Any], int]],
    done: dict[tuple[int, int], dict[str, Any]],
) -> None:
    todo = [(c, s) for c, s in todo if (c["id"], s) not in done]  # failed ones: not in done
    if not todo:
        return
    train_o, eval_o = final_overrides(st, args)
    jobs = [
        {
            "dir": str(st.out / "final" / f"c{c['id']:03d}-seed{s}"),
            "weights": c["weights"],
            "cand": c["id"],
            "seed": s,
            "steps": args.final_steps,
            "config": args.config,
            "root": str(st.root),
            "train": args.final_train,
            "train_overrides": train_o,
            "eval_overrides": eval_o,
            "threads": args.threads,
        }
        for c, s in todo
    ]

    def finished(rec: dict[str, Any]) -> None:
        append_record(st.out, rec)
        if "error" in rec:
            print(f"final c{rec['cand']:03d} seed {rec['seed']} FAILED: {rec['error']}")
            return
        done[(rec["cand"], rec["seed"])] = rec
        print(
            f"final c{rec['cand']:03d} seed {rec['seed']}: balanced acc "
            f"{rec['balanced_accuracy']:.3f} top-1 {rec['top1']:.3f} "
            f"({rec['train_seconds']:.0f}s + {rec['eval_seconds']:.0f}s)",
            flush=True,
        )

    # a thread per job: each runs subprocesses, so threads suffice for --jobs
    if args.jobs <= 1:
        for job in jobs:
            finished(final_job(job))
        return
    from concurrent.futures import ThreadPoolExecutor, as_completed

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for fut in as_completed([pool.submit(final_job, job) for job in jobs]):
            finished(fut.result())


# -- the whole benchmark --------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    check_meta(out, args)
    root = make_dataset(args)
    st = study(args, root, out)
    records = read_records(out)
    proxies = {(r["cand"], r["seed"]): r for r in records if r["kind"] == "proxy"}
    finals = {
        (r["cand"], r["seed"]): r for r in records if r["kind"] == "final" and "error" not in r
    }
    first = first_generation(st, args)
    cands = _known_candidates(out, first)
    print(
        f"bench_proxy: {len(first)} + {args.perturb} candidates in the {st.space.space} "
        f"space ({st.space.dim} coordinates), rungs {st.rungs}, fitnesses "
        f"{', '.join(st.sections)}; {len(proxies)} proxy runs and {len(finals)} finals "
        "already done",
        flush=True,
    )
    run_proxies(st, args, [(c, 0) for c in first], proxies)
    if args.perturb and len(cands) == len(first):
        best = max(first, key=lambda c: top_value(proxies.get((c["id"], 0)), st.profile_fitness))
        more = perturbations(st, args, first, best)
        for c in more:
            append_record(out, {"kind": "candidate", **c})
        cands = cands + more
    run_proxies(st, args, [(c, 0) for c in cands], proxies)
    noise = noise_candidates(cands, args.noise_candidates)
    run_proxies(st, args, [(c, k) for c in noise for k in range(1, args.proxy_seeds)], proxies)
    run_finals(st, args, [(c, int(args.seed)) for c in cands], finals)
    extra = range(int(args.seed) + 1, int(args.seed) + args.final_seeds)
    run_finals(st, args, [(noise[0], s) for s in extra], finals)
    text = render(out)
    (out / TABLE).write_text(text, encoding="utf-8")
    print("\n" + text)
    return 0


def _known_candidates(out: Path, first: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first generation (checked against the stored one: the draw must not change
    between runs) and the stored perturbations."""
    stored = {r["id"]: r for r in read_records(out) if r["kind"] == "candidate"}
    for c in first:
        old = stored.get(c["id"])
        if old is None:
            append_record(out, {"kind": "candidate", **c})
        elif not np.allclose(old["vector"], c["vector"], rtol=0, atol=1e-12):
            fail(
                f"candidate {c['id']} drawn now differs from the one in {out}; "
                "the code or config changed: choose a new --out"
            )
    ids = {c["id"] for c in first}
    return first + [
        {k: v for k, v in r.items() if k != "kind"}
        for i, r in sorted(stored.items())
        if i not in ids
    ]


def noise_candidates(cands: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """Uniform λ = 1 first, then the first strategy samples (not seed points)."""
    uniform = [c for c in cands if c["origin"] == "seed:uniform"]
    rest = [c for c in cands if not c["origin"].startswith(("seed:", "perturb:"))]
    return (uniform + rest)[: max(1, n)]


# -- the table ------------------------------------------------------------------------
def spearman_ci(f: np.ndarray, y: np.ndarray, boot: int, seed: int) -> tuple[float, float, float]:
    """Spearman ρ and its percentile bootstrap 95 % CI (resampling candidates)."""
    from scipy.stats import spearmanr

    if len(f) < 3 or np.ptp(f) == 0 or np.ptp(y) == 0:
        return math.nan, math.nan, math.nan
    rho = float(spearmanr(f, y)[0])
    rng = np.random.default_rng(seed)
    rs = []
    for _ in range(boot):
        i = rng.integers(len(f), size=len(f))
        if np.ptp(f[i]) > 0 and np.ptp(y[i]) > 0:
            rs.append(spearmanr(f[i], y[i])[0])
    lo, hi = np.nanpercentile(rs, [2.5, 97.5]) if rs else (math.nan, math.nan)
    return rho, float(lo), float(hi)


def summarise(out: Path) -> dict[str, Any]:
    """Every figure of the table, from OUT/records.jsonl and OUT/meta.json."""
    meta = json.loads((out / META).read_text(encoding="utf-8"))
    recs = read_records(out)
    cands = {r["id"]: r for r in recs if r["kind"] == "candidate"}
    proxy = {(r["cand"], r["seed"]): r for r in recs if r["kind"] == "proxy"}
    final = {(r["cand"], r["seed"]): r for r in recs if r["kind"] == "final" and "error" not in r}
    seed, metric = int(meta["seed"]), meta.get("metric", "balanced_accuracy")
    probe = {c: final[(c, seed)][metric] for c in cands if (c, seed) in final}
    any_proxy = next(iter(proxy.values()), None)
    steps = any_proxy["steps"] if any_proxy else []
    have = set(any_proxy["scores"]) if any_proxy else set()
    names = [n for n in meta["fitnesses"] if n in have]
    noise = noise_candidates(list(cands.values()), int(meta["noise_candidates"]))
    uniform = noise[0]["id"] if noise else None
    final_sd = _sd([r[metric] for (c, _), r in final.items() if c == uniform])
    rows = []
    for name in names:
        for r, s in enumerate(steps):
            rows.append(_row(name, r, s, cands, proxy, probe, noise, final_sd, meta))
    best = max(probe, key=lambda c: probe[c]) if probe else None
    return {
        "meta": meta,
        "candidates": cands,
        "probe": probe,
        "rows": rows,
        "steps": steps,
        "final_sd": final_sd,
        "final_seeds": sum(1 for c, _ in final if c == uniform),
        "uniform": uniform,
        "best": best,
        "proxy": proxy,
        "metric": metric,
        "noise": [c["id"] for c in noise],
    }


def _value(rec: dict[str, Any] | None, name: str, rung: int) -> float:
    if rec is None:
        return math.nan
    vals = rec["scores"].get(name, [])
    v = vals[rung] if rung < len(vals) else None
    return float(v) if isinstance(v, int | float) else math.nan


def _sd(values: Sequence[float]) -> float:
    vals = [v for v in values if math.isfinite(v)]
    return float(np.std(vals, ddof=1)) if len(vals) >= 2 else math.nan


def _row(
    name: str,
    rung: int,
    steps: int,
    cands: dict[int, Any],
    proxy: dict[Any, Any],
    probe: dict[int, float],
    noise: list[dict[str, Any]],
    final_sd: float,
    meta: dict[str, Any],
) -> dict[str, Any]:
    f = {c: _value(proxy.get((c, 0)), name, rung) for c in cands}
    pop_sd = _sd(list(f.values()))
    both = [c for c in cands if c in probe and math.isfinite(f[c])]
    x = np.array([f[c] for c in both])
    y = np.array([probe[c] for c in both])
    rho, lo, hi = spearman_ci(x, y, int(meta.get("boot", 2000)), int(meta["seed"]))
    pick = max(both, key=lambda c: f[c]) if both else None
    regret = (max(y) - probe[pick]) if pick is not None else math.nan
    seeds = sorted({k for (_, k) in proxy})
    per = {c["id"]: [_value(proxy.get((c["id"], k)), name, rung) for k in seeds] for c in noise}
    sds = [_sd(v) for v in per.values()]
    seed_sd = (
        float(np.sqrt(np.nanmean(np.square(sds)))) if any(map(math.isfinite, sds)) else math.nan
    )
    diff_sd = math.nan
    if len(noise) >= 2:
        a, b = per[noise[0]["id"]], per[noise[1]["id"]]
        diff_sd = _sd([u - v for u, v in zip(a, b, strict=True)])
    n_seeds = min((sum(map(math.isfinite, v)) for v in per.values()), default=0)
    return {
        "fitness": name,
        "rung": rung + 1,
        "steps": steps,
        "n": len(both),
        "rho": rho,
        "lo": lo,
        "hi": hi,
        "pick": pick,
        "regret": regret,
        "regret_sd": regret / final_sd if final_sd and math.isfinite(final_sd) else math.nan,
        "seed_sd": seed_sd,
        "n_seeds": n_seeds,
        "pop_sd": pop_sd,
        "snr": pop_sd / seed_sd if seed_sd and math.isfinite(seed_sd) else math.nan,
        "diff_sd": diff_sd,
    }


def render(out: Path) -> str:
    s = summarise(out)
    meta, probe, cands = s["meta"], s["probe"], s["candidates"]
    origins: dict[str, int] = {}
    for c in cands.values():
        key = c["origin"].split(":")[0]
        origins[key] = origins.get(key, 0) + 1
    vals = sorted(probe.values())
    uni = probe.get(s["uniform"], math.nan) if s["uniform"] is not None else math.nan
    sets = " ".join([*meta["overrides"], *meta["proxy_set"]]) or "none"
    lines = [
        f"### bench_proxy: {meta['data']} (config {meta['config']}, seed {meta['seed']})",
        "",
        f"{len(cands)} candidates ({', '.join(f'{k} {v}' for k, v in origins.items())}); "
        f"proxy overrides: {sets}; final: {meta['final_steps']} steps (elo-train --train "
        f"{meta['final_train']} + the demo's final sizes"
        + (f"; {' '.join(meta['final_set'])}" if meta["final_set"] else "")
        + f"), linear probe on the test split, {s['metric']}.",
        "",
        f"Final probe over {len(vals)} candidates: "
        + (
            f"{vals[0]:.3f}..{vals[-1]:.3f} (median {np.median(vals):.3f}); "
            f"best {max(vals):.3f} (c{s['best']}, {cands[s['best']]['origin']}); "
            if vals
            else "none yet; "
        )
        + f"uniform λ {uni:.3f}; final seed sd (uniform λ, {s['final_seeds']} seeds) "
        f"{s['final_sd']:.4f}. Noise candidates: "
        + ", ".join(f"c{c} ({cands[c]['origin']})" for c in s["noise"])
        + ".",
        "",
        "| fitness | rung (steps) | n | Spearman ρ [95% CI] | pick | regret | regret / "
        "final sd | seed sd (seeds) | population sd | SNR | paired-diff sd |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in s["rows"]:
        pick = f"c{r['pick']}" if r["pick"] is not None else "–"
        lines.append(
            f"| {r['fitness']} | {r['rung']} ({r['steps']}) | {r['n']} | {r['rho']:+.2f} "
            f"[{r['lo']:+.2f}, {r['hi']:+.2f}] | {pick} | {r['regret']:.3f} | "
            f"{r['regret_sd']:.1f} | {r['seed_sd']:.4f} ({r['n_seeds']}) | {r['pop_sd']:.4f} | "
            f"{r['snr']:.1f} | {r['diff_sd']:.4f} |"
        )
    lines += [
        "",
        "| candidate | origin | final probe | "
        + " | ".join(
            f"{r['fitness']} @{r['steps']}" for r in s["rows"] if r["rung"] == len(s["steps"])
        )
        + " |",
    ]
    top = [r for r in s["rows"] if r["rung"] == len(s["steps"])]
    lines.append("|---|---|---|" + "---|" * len(top))
    for c in sorted(cands, key=lambda c: -probe.get(c, -1.0)):
        cells = [
            _fmt_num(_value(s["proxy"].get((c, 0)), r["fitness"], len(s["steps"]) - 1)) for r in top
        ]
        p = probe.get(c)
        lines.append(
            f"| c{c} | {cands[c]['origin']} | {'–' if p is None else f'{p:.3f}'} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines) + "\n"


def _fmt_num(v: float) -> str:
    return f"{v:+.4f}" if math.isfinite(v) else "–"


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--out", help="folder of records.jsonl, meta.json, table.md, trainings")
    p.add_argument("--table-from", metavar="OUT", help="only print the table of a bench folder")
    p.add_argument("--config", default="demo", help="experiment config (proxy and final)")
    p.add_argument("--data", default="data/bench-proxy", help="demo dataset (made if missing)")
    p.add_argument("--style", default="a", choices=("a", "b", "c"), help="demo generator style")
    p.add_argument("--gen-seed", type=int, default=0, help="demo generator seed")
    p.add_argument("--clips", type=int, default=1200, help="demo clips when making it")
    p.add_argument("--candidates", type=int, default=24, help="candidates in all")
    p.add_argument("--perturb", type=int, help="of them, perturbations of the best (N // 4)")
    p.add_argument("--perturb-sigma", type=float, help="their step (default search.sigma / 2)")
    p.add_argument("--seed-points", action="store_true", help="as elo-search --seed-points")
    p.add_argument("--proxy-steps", type=int, help="as elo-search --steps (default: config)")
    p.add_argument("--fitnesses", nargs="+", default=["xmodal", "xpredict", "zipf", "weak"])
    p.add_argument("--proxy-seeds", type=int, default=3, help="seeds of the noise candidates")
    p.add_argument("--noise-candidates", type=int, default=2, help="uniform λ + first samples")
    p.add_argument(
        "--independent",
        action="store_true",
        help="one seed per candidate (batches, views, initial weights; trunk "
        "shared): the contrast to common random numbers",
    )
    p.add_argument("--final-steps", type=int, default=300, help="as elo.demo --final-steps")
    p.add_argument("--final-seeds", type=int, default=3, help="final seeds of uniform λ")
    p.add_argument("--final-train", default="final", help="elo-train --train")
    p.add_argument("--proxy-set", nargs="*", default=[], help="key=value for the proxy only")
    p.add_argument("--final-set", nargs="*", default=[], help="key=value for the final only")
    p.add_argument("--metric", default="balanced_accuracy", choices=("balanced_accuracy", "top1"))
    p.add_argument("--boot", type=int, default=2000, help="bootstrap resamples")
    p.add_argument("--jobs", type=int, default=1, help="trainings at once")
    p.add_argument("--threads", type=int, help="torch threads per training (jobs > 1: 1)")
    p.add_argument("--seed", type=int, default=0, help="the search's seed (and final seed)")
    p.add_argument("overrides", nargs="*", help="key=value for proxy and final")
    args = p.parse_args(argv)
    if args.perturb is None:
        args.perturb = args.candidates // 4
    if args.threads is None and args.jobs > 1:
        args.threads = 1
    if not args.table_from and not args.out:
        p.error("--out is required (or --table-from OUT)")
    if args.candidates - args.perturb < 2 or args.proxy_seeds < 1 or args.final_seeds < 1:
        p.error("need --candidates - --perturb >= 2, --proxy-seeds >= 1, --final-seeds >= 1")
    return args


def stop_children(signum: int = 0, frame: Any = None) -> None:
    """SIGTERM: stop the subprocesses (elo-train writes its checkpoint on SIGTERM, so a
    rerun continues it), then stop as Ctrl-C does."""
    _STOPPING.set()
    for child in list(_CHILDREN):
        child.terminate()
    for child in list(_CHILDREN):
        child.wait(timeout=120)
    if signum:
        raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.table_from:
        print(render(Path(args.table_from)))
        return 0
    import signal

    previous = signal.signal(signal.SIGTERM, stop_children)
    try:
        return run(args)
    except KeyboardInterrupt:
        stop_children()
        print("bench_proxy: stopped; rerun the same command to continue", flush=True)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        _STOPPING.clear()


if __name__ == "__main__":
    sys.exit(main())
