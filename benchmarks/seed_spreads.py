"""The seed-to-seed spreads behind the learned-result thresholds of the test suite.

Each section reruns the computation one test checks, over several seeds, and prints its
values with mean, sd, min and max; the tests' docstrings quote these figures and
state the margin of their thresholds (tests/test_eval.py, tests/test_tutorial_task.py,
tests/test_baseline_ssl_gain.py).

    python benchmarks/seed_spreads.py                  # every section, 10 seeds (6 SimSiam)
    python benchmarks/seed_spreads.py --only eval --seeds 5

torch runs on one thread, as in the suite (tests/conftest.py).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"


def line(name: str, values: Sequence[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    vals = ", ".join(f"{v:.3f}" for v in values)
    return (
        f"{name}: mean {statistics.mean(values):.3f} sd {sd:.3f} min {min(values):.3f} "
        f"max {max(values):.3f} (n={len(values)}: {vals})"
    )


def eval_protocols(seeds: Sequence[int], tmp: Path) -> None:
    """tests/test_eval.py: the three protocols on moving squares (12 test clips) and the
    nuisance label (24 test clips, 2 classes); seed 0 is the test's own data."""
    import torch
    from test_eval import _batches, _Tuned

    from elo.evaluation.evaluate import evaluate
    from elo.evaluation.pixel_stats import build_pixel_stats_encoder

    for protocol in ("linear", "knn", "finetune"):
        top1 = []
        for s in seeds:
            torch.manual_seed(s)
            train, test = _batches(6, seed=1 + 10 * s), _batches(3, seed=2 + 10 * s)
            enc = build_pixel_stats_encoder(grid=1) if protocol != "finetune" else _Tuned()
            res = evaluate(
                enc, train, test, protocol=protocol, num_classes=4, epochs=30, lr=0.05, k=5
            )
            top1.append(res.top1)
        print(line(f"test_protocols_known_answer[{protocol}] top1", top1), flush=True)
    nuisance = []
    for s in seeds:
        torch.manual_seed(s)
        train, test = _batches(6, seed=1 + 10 * s), _batches(6, seed=3 + 10 * s)
        res = evaluate(
            build_pixel_stats_encoder(grid=1), train, test, protocol="linear", label="identity"
        )
        nuisance.append(res.top1)
    print(line("test_nuisance_label_is_at_chance top1 (2 classes)", nuisance), flush=True)

    import json

    from test_eval import export_reference, write_labeled_videos

    from elo import cli

    lin, ident = [], []
    for s in seeds:
        root, manifest = write_labeled_videos(tmp / f"eval{s}" / "ucf", seed=s)
        enc = export_reference(tmp / f"eval{s}" / "enc")
        out = tmp / f"eval{s}" / "res"
        args = ["--encoder", str(enc), "--out", str(out), "--seed", str(s)]
        assert cli.eval_main([*args, "--data", str(root), "--protocol", "linear"]) == 0
        lin.append(json.loads((out / "results.json").read_text())["top1"])
        geometry = ["data.clip.extra_frames=0", "data.clip.extra_pixels=0"]
        more = ["--protocol", "knn", "--k", "3", "--label", "identity", *geometry]
        assert cli.eval_main([*args, "--data", str(manifest), *more]) == 0
        ident.append(json.loads((out / "results.json").read_text())["top1"])
    print(line("test_elo_eval_known_answer_on_ucf_style_folder top1 (8 clips)", lin))
    print(line("test_elo_eval_second_label_column top1 (8 clips, identity)", ident), flush=True)


def tutorial(seeds: Sequence[int], tmp: Path) -> None:
    """tests/test_tutorial_task.py: the speed task memorising 8 clips in 30 steps; the
    mean accuracy of the last 4 steps (32 predictions)."""
    import importlib
    import shutil
    import uuid

    import torch
    from test_tasks import real_batch, single_term_model, tiny_cfg, write_clips

    import elo.tasks as tasks_pkg
    from elo.model.heads import TASKS
    from elo.model.terms import TermKey

    drop = tmp / "tasks"
    drop.mkdir()
    shutil.copy(
        Path(tasks_pkg.__path__[0]) / "_example_speed.py", drop / f"speed_{uuid.uuid4().hex[:8]}.py"
    )
    tasks_pkg.__path__.append(str(drop))
    importlib.invalidate_caches()
    TASKS.discover(force=True)
    term = TermKey.parse("rgb/speed")
    values = []
    for s in seeds:
        batch = real_batch(write_clips(tmp / f"speed{s}", 8, seed=s), 8)
        torch.manual_seed(s)
        model = single_term_model(term, tiny_cfg(), seed=s)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        accs = []
        for step in range(30):
            out = model(batch, step=step % 2)
            opt.zero_grad()
            out.total.backward()
            opt.step()
            accs.append(float(out.logs["rgb/speed/accuracy"]))
        values.append(sum(accs[-4:]) / 4)
    print(line("test_example_task_trains_on_real_video last-4 accuracy", values), flush=True)


#: extra overrides of every SimSiam run (``--simsiam-set``, e.g. a short smoke run)
SIMSIAM_EXTRA: list[str] = []


def simsiam(seeds: Sequence[int], tmp: Path) -> None:
    """tests/test_baseline_ssl_gain.py: the 100-step SimSiam run on digits: the loss
    over its first and last 10 steps, the projection's std at the end, the kNN top-1
    of the trained encoder and of its random init; then one run with lr 0 (no learning)
    and one without the stop-gradient (collapse), seed 0."""
    import json

    import torch
    from test_baseline_ssl_gain import DIGIT_VIEWS, OVERRIDES, digits

    from elo.baselines.image_encoder import build_image_encoder
    from elo.baselines.trainer import fit, knn_eval, load_baseline_config

    images, labels = digits()
    rows: dict[str, list[float]] = {}

    def run(name: str, s: int, extra: Sequence[str]) -> dict[str, float]:
        cfg = load_baseline_config(
            "simsiam",
            None,
            [f"seed={s}", *OVERRIDES, "train.log_every=1", *DIGIT_VIEWS, *extra, *SIMSIAM_EXTRA],
        )
        torch.manual_seed(s)
        rand = knn_eval(build_image_encoder(**cfg["encoder"]), images, labels, cfg, "cpu")
        out = tmp / f"simsiam-{name}-{s}"
        t0 = time.perf_counter()
        summary = fit(cfg, images, out, labels=labels)
        loss = [json.loads(x)["loss"] for x in (out / "metrics.jsonl").read_text().splitlines()]
        rec = {
            "first10": statistics.mean(loss[:10]),
            "last10": statistics.mean(loss[-10:]),
            "drop": statistics.mean(loss[:10]) - statistics.mean(loss[-10:]),
            "std": float(summary["collapse_std"]),
            "warnings": float(summary["collapse_warnings"]),
            "knn": float(summary["knn_top1"]),
            "random_knn": rand,
            "gain": float(summary["knn_top1"]) - rand,
        }
        print(
            f"  {name} seed {s}: "
            + ", ".join(f"{k} {v:.4f}" for k, v in rec.items())
            + f" ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
        return rec

    for s in seeds:
        for k, v in run("trained", s, []).items():
            rows.setdefault(k, []).append(v)
    for k, v in rows.items():
        print(line(f"simsiam {k}", v), flush=True)
    run("lr0", 0, ["train.lr=0"])
    run("no-stop-gradient", 0, ["simsiam.stop_gradient=false"])


SECTIONS: dict[str, Callable[[Sequence[int], Path], None]] = {
    "eval": eval_protocols,
    "tutorial": tutorial,
    "simsiam": simsiam,
}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=sorted(SECTIONS), action="append")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--simsiam-seeds", type=int, default=6)
    p.add_argument("--simsiam-set", action="append", default=[], help="override, e.g. a smoke")
    args = p.parse_args(argv)
    SIMSIAM_EXTRA.extend(args.simsiam_set)
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(TESTS))
    for name in args.only or list(SECTIONS):
        n = args.simsiam_seeds if name == "simsiam" else args.seeds
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix=f"elo-spread-{name}-") as tmp:
            print(f"== {name}: seeds 0-{n - 1}", flush=True)
            SECTIONS[name](range(n), Path(tmp))
        print(f"   ({time.perf_counter() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
