"""Memory of reused trial workers (docs/reliability.md): what a trial keeps is released, the
per-trial memory is reported, and concurrency respects the memory Ray may schedule."""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from elo.errors import ConfigError
from elo.search.memory import peak_mb, reset_peak, rss_mb, workers_that_fit

GB = 2**30


def test_workers_that_fit_lowers_sums_nodes_and_refuses() -> None:
    assert workers_that_fit(4, 2.0, [5 * GB]) == 2  # 5 GB holds two 2 GB trials
    assert workers_that_fit(4, 2.0, [5 * GB, 3 * GB]) == 3  # 2 + 1 over two nodes
    assert workers_that_fit(2, 2.0, [64 * GB]) == 2  # never raised above the request
    assert workers_that_fit(3, 0.0, [1.0]) == 3  # 0 = no memory cap
    with pytest.raises(ConfigError, match=r"search\.memory_per_trial_gb=8 .* 3\.0 GB") as e:
        workers_that_fit(2, 8.0, [3 * GB, 1 * GB])
    assert "\n" not in str(e.value)


def test_peak_counter_sees_an_allocation_and_resets() -> None:
    if not Path("/proc/self/status").exists():
        pytest.skip("needs Linux /proc")
    reset_peak()
    base = peak_mb()
    # 200 MiB of fresh anonymous pages, each touched: malloc could serve a numpy array
    # from heap pages earlier tests left resident (seen once in a full 3.12 run), which
    # would not move the RSS at all
    block = mmap.mmap(-1, 200 * 2**20)
    np.frombuffer(block, dtype=np.uint8)[:: mmap.PAGESIZE] = 1
    assert peak_mb() - base > 150 and rss_mb() > 150
    block.close()
    reset_peak()
    assert peak_mb() < base + 100  # the counter restarted from the current RSS


def test_embed_keeps_no_autograd_graph() -> None:
    """The fitness embeds hundreds of clips: with a graph, every chunk's activations
    stay alive and a trial worker grows per trial (docs/reliability.md)."""
    from elo.model.network import embed

    enc = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 4))

    class Out:
        def __init__(self, e: torch.Tensor) -> None:
            self.embedding = e

    class Wrap(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = enc

        def forward(self, x: torch.Tensor) -> Out:
            return Out(self.inner(x))

    x = torch.randn(70, 3, 4)
    e = embed(Wrap(), x, batch_size=32)
    assert e.shape == (70, 4) and not e.requires_grad and e.grad_fn is None


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def _synthetic_cfg(per_trial_gb: float) -> dict:
    from elo.config import load_config
    from elo.search.settings import fitness_section

    cfg = load_config(
        "demo",
        [
            "objective.modalities=[rgb]",
            "objective.tasks=[reconstruction,temporal_order]",
            "search.population=4",
            "search.generations=1",
            "search.workers=2",
            f"search.memory_per_trial_gb={per_trial_gb}",
        ],
    )
    cfg["fitness"] = fitness_section("synthetic")
    return cfg


@pytest.mark.timeout(180)
def test_search_lowers_concurrency_to_the_memory_ray_may_schedule(
    ray_session: None, tmp_path: Path
) -> None:
    import ray

    from elo.search.run import run_search
    from elo.search.rundir import prepare_run_dir

    node = max(float(n["Resources"]["memory"]) for n in ray.nodes() if n["Alive"]) / GB
    cfg = _synthetic_cfg(round(node / 1.5, 3))  # one trial fits, two do not
    lines: list[str] = []
    out = run_search(cfg, prepare_run_dir(cfg, tmp_path / "a"), echo=lines.append, report=False)
    assert out["finished"] and out["evaluations"] == 4
    assert any("running 1 at once" in ln for ln in lines), lines

    cfg = _synthetic_cfg(round(node * 4, 1))  # no node holds one trial
    with pytest.raises(ConfigError, match="memory_per_trial_gb"):
        run_search(cfg, prepare_run_dir(cfg, tmp_path / "b"), echo=lines.append, report=False)


def test_infrastructure_failures_are_told_from_our_errors() -> None:
    from elo.search.failures import infrastructure_failure

    oom = RuntimeError(
        "Caught unexpected exception: 2 worker(s) were killed due to the node running "
        "low on memory. Memory on the node was 22.44GB used / 23.54GB limit"
    )
    assert infrastructure_failure(oom)
    try:
        try:
            raise type("ActorDiedError", (Exception,), {})("the actor died")
        except Exception as inner:
            raise RuntimeError("tune failed") from inner
    except RuntimeError as chained:
        assert infrastructure_failure(chained)
    assert not infrastructure_failure(ConfigError("unknown config key 'search.x'"))
    assert not infrastructure_failure(ValueError("non-finite loss"))


def test_search_killed_by_ray_memory_monitor_resumes_within_max_retries(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The demo search once died when Ray's memory monitor killed two workers while
    their actors started (another process took the memory): tuner.fit() itself raised.
    run_search resumes from the run directory instead, up to search.max_retries."""
    import elo.search.run as run
    from elo.search.rundir import prepare_run_dir

    cfg = _synthetic_cfg(0.0)
    cfg["search"]["max_retries"] = 2
    calls: list[bool] = []

    def flaky(*args: object, resume: bool, **kw: object) -> dict:
        calls.append(resume)
        if len(calls) == 1:
            raise RuntimeError("2 worker(s) were killed due to the node running low on memory")
        return {"finished": True}

    monkeypatch.setattr(run, "_run_search", flaky)
    lines: list[str] = []
    out = run.run_search(cfg, prepare_run_dir(cfg, tmp_path / "r"), echo=lines.append)
    assert out == {"finished": True} and calls == [False, True]
    assert any("resuming from" in ln and "retry 1/2" in ln for ln in lines)

    calls.clear()  # our own errors are not retried
    monkeypatch.setattr(run, "_run_search", lambda *a, **k: calls.append(1) or 1 / 0)
    with pytest.raises(ZeroDivisionError):
        run.run_search(cfg, tmp_path / "r", echo=lines.append)
    assert calls == [1]

    def always(*args: object, resume: bool, **kw: object) -> dict:
        calls.append(resume)
        raise RuntimeError("OutOfMemoryError: worker killed")

    calls.clear()
    monkeypatch.setattr(run, "_run_search", always)
    with pytest.raises(RuntimeError, match="OutOfMemoryError"):
        run.run_search(cfg, tmp_path / "r", echo=lines.append)
    assert calls == [False, True, True]  # 1 + max_retries attempts
