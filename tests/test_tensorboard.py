"""TensorBoard event files, read back with tensorboard's EventAccumulator: elo-train's
(loss per term, λ, learning rate, clips/s) match its JSON lines, a resumed run does not
repeat steps, and a search's per-trial / per-generation scalars match its records."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_tasks import write_clips
from test_trainer import ACTIVE, run_cfg, weights_for

from elo.rundir import read_jsonl
from elo.train.trainer import train_model


def _scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clips(tmp_path_factory.mktemp("tb") / "videos", 8, seed=7)


def test_training_events_mirror_the_json_log(data: Path, tmp_path: Path) -> None:
    cfg = run_cfg(steps=3, every=0)
    w = weights_for(cfg)
    train_model(cfg, w, data_root=data, steps=3, out_dir=tmp_path, progress=False)
    log = list(read_jsonl(tmp_path / "train_log.jsonl"))
    sc = _scalars(tmp_path / "tensorboard")
    assert [s for s, _ in sc["train/loss"]] == [1, 2, 3]
    for key, tag in (("loss", "train/loss"), ("lr", "train/lr")):
        assert [v for _, v in sc[tag]] == pytest.approx([r[key] for r in log], rel=1e-6)
    for term in ACTIVE:
        raw = [v for _, v in sc[f"loss_raw/{term}"]]
        assert raw == pytest.approx([r[f"raw/{term}"] for r in log], rel=1e-6)
        assert [v for _, v in sc[f"loss_weighted/{term}"]] == pytest.approx(
            [r[f"weighted/{term}"] for r in log], rel=1e-6
        )
    lam = {t[len("lambda/") :]: v[0] for t, v in sc.items() if t.startswith("lambda/")}
    assert lam == {k: (0, pytest.approx(v)) for k, v in w.values.items()}
    clips = [v for _, v in sc["train/clips_per_s"]]
    assert len(clips) == 3 and all(v > 0 for v in clips)


def test_resumed_training_does_not_repeat_steps(data: Path, tmp_path: Path) -> None:
    cfg = run_cfg(steps=4, every=2)
    w = weights_for(cfg)
    train_model(cfg, w, data_root=data, steps=2, out_dir=tmp_path, progress=False)
    train_model(cfg, w, data_root=data, steps=4, out_dir=tmp_path, progress=False, resume=True)
    sc = _scalars(tmp_path / "tensorboard")
    log = list(read_jsonl(tmp_path / "train_log.jsonl"))
    assert [s for s, _ in sc["train/loss"]] == [1, 2, 3, 4]
    assert [v for _, v in sc["train/loss"]] == pytest.approx([r["loss"] for r in log], rel=1e-6)


def test_search_events_per_trial_and_generation(tmp_path: Path) -> None:
    from elo.search.run import RunLog

    lines: list[str] = []
    run = RunLog(tmp_path, total=4, done=0, echo=lines.append)
    fits = [0.2, None, 0.5, 0.1]
    for i, f in enumerate(fits):
        run.evaluation(
            {
                "generation": i // 2,
                "index": i % 2,
                "fitness": f,
                "seconds": 1.0 + i,
                "status": "ok" if f is not None else "failed",
                "weights": {"rgb/a": i / 4, "rgb/b": 1 - i / 4},
            }
        )
        if i % 2:
            ok = [x for x in fits[i - 1 : i + 1] if x is not None]
            run.generation_done(
                {
                    "generation": i // 2,
                    "best": max(ok),
                    "median": sorted(ok)[len(ok) // 2],
                    "evaluated": 2,
                    "failed": 2 - len(ok),
                }
            )
    run.board.close()
    sc = _scalars(tmp_path / "tensorboard")
    assert sc["trial/fitness"] == [(1, pytest.approx(0.2)), (3, 0.5), (4, pytest.approx(0.1))]
    assert [s for s, _ in sc["trial/seconds"]] == [1, 2, 3, 4]
    assert sc["generation/best"] == [(1, pytest.approx(0.2)), (2, 0.5)]
    assert sc["generation/failed"] == [(1, 1.0), (2, 0.0)]
    assert sc["best/fitness"] == [(1, pytest.approx(0.2)), (2, 0.5)]
    assert sc["best_lambda/rgb/a"] == [(1, 0.0), (2, 0.5)]  # λ of the best so far
    assert "trials 4/4 (1 failed)  best so far 0.5000  ETA" in lines[-1]
    assert lines[-1].startswith("generation 2: best 0.5000")


def test_search_progress_line_on_a_terminal(tmp_path: Path, capsys) -> None:
    """On a terminal every finished trial rewrites one line (trials done / total, best so
    far, ETA); the generation line replaces it."""
    from elo.search.run import RunLog

    run = RunLog(tmp_path, total=2, done=0, echo=print)
    run.live = True  # what RunLog sets when stdout is a terminal and echo is print
    for i, f in enumerate([0.3, 0.7]):
        run.evaluation(
            {
                "generation": 0,
                "index": i,
                "fitness": f,
                "seconds": 1.0,
                "status": "ok",
                "weights": {"rgb/a": 0.5},
            }
        )
    run.generation_done({"generation": 0, "best": 0.7, "median": 0.5, "evaluated": 2, "failed": 0})
    run.board.close()
    out = capsys.readouterr().out
    frames = out.split("\r\033[K")
    assert frames[1].startswith("trials 1/2 (0 failed)  best so far 0.3000  ETA")
    assert frames[2].startswith("trials 2/2 (0 failed)  best so far 0.7000  ETA")
    assert frames[3].startswith("generation 1: best 0.7000  median 0.5000  | trials 2/2")
    assert out.endswith("\n") and out.count("\n") == 1


def test_a_new_event_file_sorts_after_the_folders_existing_ones(tmp_path: Path) -> None:
    """TensorBoard reads event files in name order (creation second, host, pid, a
    per-process counter): a board opened in the second of an existing file waits for
    the next second, so its file sorts after (a counter of 10 would sort before 9)."""
    import time

    from elo.train.tblog import ScalarBoard

    now = int(time.time())
    old = tmp_path / f"events.out.tfevents.{now}.host.1.9"
    old.write_bytes(b"")
    board = ScalarBoard(tmp_path)
    board.add({"train/loss": 1.0}, step=1)
    board.close()
    names = sorted(f.name for f in tmp_path.glob("events.out.tfevents.*"))
    assert names[0] == old.name and len(names) == 2
    assert int(names[1].split(".")[3]) > now
