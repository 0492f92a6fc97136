"""elo-extract: a corpus of broken and odd inputs, the cache (hit, param change, file
change), the process pool, the skip report and a kill mid-way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _media import frame_index_pattern, moving_square, tone, write_audio_only, write_video

from elo.config import load_config
from elo.data.cache import ClipCache, spec_from_config
from elo.data.extract import extract_paths, find_videos
from elo.rundir import read_jsonl

# file -> expected substring of the skip reason
BROKEN = {
    "empty.mp4": "zero-length",
    "random_bytes.mp4": "cannot open",
    "text_named.avi": "cannot open",
    "truncated.mp4": "cannot open",
    "folder.mkv": "is a directory",
    "loop.mp4": "symlink loop",
    "dangling.mov": "broken symlink",
    "audio_only.mp4": "audio-only",
    "too_short.mp4": "too short",
    "image_named.webm": "",  # a PNG: either not a video or too short, but skipped
    "header_only.mkv": "",  # valid EBML header, no frames
}
GOOD = {  # name -> (frames, fps, size (h, w), has audio)
    "a/with_audio.mp4": (16, 8.0, (48, 64), True),
    "a/no_audio.mp4": (16, 8.0, (48, 64), False),
    "b/odd_fps_size.mkv": (30, 12.5, (55, 97), True),
    "b/pcm.avi": (20, 10.0, (64, 64), True),
    "c/opus.webm": (16, 8.0, (40, 40), True),
    "c/spaces and ünïcode.mov": (16, 8.0, (64, 48), True),
}


def _exact(over: list[str]) -> list[str]:
    """``over`` plus, where the profile caches extra frames / pixels for train-time
    crops, overrides that switch them off: these tests pin the cached clip geometry."""
    clip = load_config("demo")["data"]["clip"]
    return over + [f"data.clip.{k}=0" for k in ("extra_frames", "extra_pixels") if k in clip]


def _cfg(*extra: str, **clip: object) -> dict:
    over = [f"data.clip.{k}={v}" for k, v in clip.items()]
    over = ["data.clip.short=skip", *over, *extra]  # the corpus has a too-short file to skip
    return load_config("demo", _exact(["data.clip.size=32", "data.clip.sampling=uniform", *over]))


def make_corpus(root: Path) -> Path:
    for name, (t, fps, (h, w), has_audio) in GOOD.items():
        audio = tone(t / fps, 330.0) if has_audio else None
        write_video(root / name, moving_square(t, h, w, seed=len(name)), fps=fps, audio=audio)
    bad = root / "bad"
    bad.mkdir(parents=True)
    (bad / "empty.mp4").write_bytes(b"")
    (bad / "random_bytes.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    (bad / "text_named.avi").write_text("this is not a video\n" * 50)
    full = write_video(bad / "full.tmpvid.mp4", frame_index_pattern(16, 32, 32), 8.0, tone(2.0))
    data = full.read_bytes()
    full.unlink()
    (bad / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (bad / "folder.mkv").mkdir()
    (bad / "folder.mkv" / "readme.txt").write_text("a directory named like a video")
    os.symlink("loop.mp4", bad / "loop.mp4")
    os.symlink("missing_target.mp4", bad / "dangling.mov")
    write_audio_only(bad / "audio_only.mp4", tone(1.0))
    write_video(bad / "too_short.mp4", moving_square(3, 32, 32), fps=8.0)
    import cv2

    ok, png = cv2.imencode(".png", np.zeros((16, 16, 3), np.uint8))
    (bad / "image_named.webm").write_bytes(png.tobytes())
    (bad / "header_only.mkv").write_bytes(bytes.fromhex("1a45dfa3") + b"\x00" * 60)
    (root / "notes.txt").write_text("not named like a video: ignored")
    (root / ".hidden.mp4").write_text("hidden: ignored")
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus") / "videos")


def test_broken_inputs_are_skipped_with_reasons_and_good_ones_extracted(
    corpus: Path, tmp_path: Path
) -> None:
    assert len(BROKEN) >= 10
    spec = spec_from_config(_cfg())
    paths = find_videos(corpus)
    names = {p.relative_to(corpus).as_posix() for p in paths}
    assert names == set(GOOD) | {f"bad/{b}" for b in BROKEN}  # hidden/.txt left out
    cache = tmp_path / "cache"
    s = extract_paths(paths, cache, spec, workers=0, progress=False)
    assert (s.ok, s.cached, s.skipped) == (len(GOOD), 0, len(BROKEN))
    recs = {Path(r["path"]).name: r for r in s.records}
    for name, why in BROKEN.items():
        assert recs[name]["status"] == "skipped", name
        assert why in recs[name]["reason"], (name, recs[name]["reason"])
        assert "\n" not in recs[name]["reason"]
    for name in GOOD:
        assert recs[Path(name).name]["status"] == "ok" and recs[Path(name).name]["clips"] == 1
    report = list(read_jsonl(cache / "extract_report.jsonl"))
    skipped = {Path(r["path"]).name for r in report if r["kind"] == "skip"}
    assert skipped == set(BROKEN)
    assert report[-1]["kind"] == "summary" and report[-1]["skipped"] == len(BROKEN)
    assert sum(s.reasons.values()) == len(BROKEN) and f"{len(BROKEN)} skipped" in s.line()

    # second run: decodes nothing (decoding would fail loudly), same outcome
    import elo.data.video

    orig = elo.data.video.decode_video
    elo.data.video.decode_video = lambda *a, **k: (_ for _ in ()).throw(AssertionError("decoded"))  # type: ignore[assignment]
    try:
        s2 = extract_paths(paths, cache, spec, workers=0, progress=False)
    finally:
        elo.data.video.decode_video = orig
    assert (s2.ok, s2.cached, s2.skipped) == (0, len(GOOD), len(BROKEN))


def test_param_change_reextracts_only_that_modality_and_touch_reextracts(
    corpus: Path, tmp_path: Path
) -> None:
    paths = [corpus / n for n in GOOD]
    cache = tmp_path / "cache"
    spec = spec_from_config(_cfg())
    assert extract_paths(paths, cache, spec, workers=0, progress=False).ok == len(GOOD)
    entry = ClipCache(cache).entry(paths[0], spec)
    rgb_file = entry.dir / f"{spec.modality_tag('rgb')}.npy"
    rgb_mtime = rgb_file.stat().st_mtime_ns
    dis = np.load(entry.dir / f"{spec.modality_tag('flow')}.npy")

    spec2 = spec_from_config(_cfg("data.modalities.flow.method=farneback"))
    assert spec2.modality_tag("flow") != spec.modality_tag("flow")
    assert spec2.modality_tag("rgb") == spec.modality_tag("rgb")
    s = extract_paths(paths, cache, spec2, workers=0, progress=False)
    assert s.ok == len(GOOD)
    assert rgb_file.stat().st_mtime_ns == rgb_mtime  # rgb not rewritten
    fb = np.load(entry.dir / f"{spec2.modality_tag('flow')}.npy")
    assert fb.shape == dis.shape and not np.array_equal(fb, dis)

    spec3 = spec_from_config(_cfg(frames=4))  # a decode param: a new entry
    assert ClipCache(cache).entry(paths[0], spec3).dir != entry.dir

    os.utime(paths[1], ns=(time.time_ns(), time.time_ns()))  # the file changed
    s = extract_paths(paths, cache, spec, workers=0, progress=False)
    assert (s.ok, s.cached) == (1, len(GOOD) - 1)


def test_missing_audio_is_recorded_per_clip(corpus: Path, tmp_path: Path) -> None:
    spec = spec_from_config(_cfg())
    paths = [corpus / "a/with_audio.mp4", corpus / "a/no_audio.mp4"]
    extract_paths(paths, tmp_path, spec, workers=0, progress=False)
    cache = ClipCache(tmp_path)
    tag = spec.modality_tag("audio")
    assert cache.entry(paths[0], spec).read_present(tag) == [True]
    silent = cache.entry(paths[1], spec)
    assert silent.read_present(tag) == [False] and silent.open_array(tag) is None


def test_process_pool_matches_in_process(corpus: Path, tmp_path: Path) -> None:
    spec = spec_from_config(_cfg())
    paths = [corpus / n for n in GOOD] + [corpus / "bad" / b for b in ("empty.mp4", "loop.mp4")]
    a = extract_paths(paths, tmp_path / "serial", spec, workers=0, progress=False)
    b = extract_paths(paths, tmp_path / "pool", spec, workers=2, progress=False)
    assert (a.ok, a.skipped) == (b.ok, b.skipped) == (len(GOOD), 2)
    for p in paths[: len(GOOD)]:
        ea, eb = (
            ClipCache(tmp_path / "serial").entry(p, spec),
            ClipCache(tmp_path / "pool").entry(p, spec),
        )
        for m in spec.modalities:
            xa, xb = ea.open_array(spec.modality_tag(m)), eb.open_array(spec.modality_tag(m))
            assert (xa is None) == (xb is None)
            if xa is not None and xb is not None:
                np.testing.assert_array_equal(xa, xb)


def test_kill_midway_keeps_finished_work(tmp_path: Path) -> None:
    # many clips per video (sliding windows, stride 1) so each file takes a while
    OVER = [
        "data.clip.size=32",
        "data.clip.sampling=sliding",
        "data.clip.stride=1",
        "data.clip.per_video=0",
    ]
    OVER = _exact(OVER)
    root = tmp_path / "many"
    for i in range(16):
        write_video(root / f"v{i:02d}.avi", moving_square(48, 32, 32, seed=i), 8.0, tone(6.0))
    cache = tmp_path / "cache"
    code = "import sys; from elo.cli import extract_main; sys.exit(extract_main(sys.argv[1:]))"
    cmd = [sys.executable, "-c", code, str(root), *OVER]
    cmd += ["--cache", str(cache), "--workers", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and len(list(cache.glob("*/*/audio-*.json"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = len(list(cache.glob("*/*/audio-*.json")))  # the last file of an entry
    assert 2 <= finished < 16, "the kill did not land mid-way"
    spec = spec_from_config(load_config("demo", OVER))
    s = extract_paths(find_videos(root), cache, spec, workers=0, progress=False)
    assert s.ok + s.cached == 16 and s.skipped == 0
    assert s.cached >= finished - 1  # at most the one in flight was incomplete
    assert not list(cache.rglob("*.tmp"))  # stale temp files cleaned
    info = json.loads(next(cache.glob("*/*/clips.json")).read_text())
    assert info["n"] == 41  # every start of a 48-frame video


def test_cli_extract_prints_summary_and_fails_when_nothing_usable(tmp_path: Path) -> None:
    from elo import cli

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.mp4").write_bytes(b"")
    assert cli.extract_main([str(bad), "--no-progress", "--workers", "0"]) == 2
    assert cli.extract_main([str(tmp_path / "nowhere"), "--no-progress"]) == 2


def _crash_on_marked(
    path: object, root: object, spec: object, retry: bool = False, window: object = None
) -> dict:
    """Runs in a worker (pickled by reference); there ``elo.data.extract`` is unpatched."""
    import elo.data.extract

    if "crash" in str(path):
        os._exit(3)  # what a segfaulting decoder looks like to the pool
    return elo.data.extract.extract_one(path, root, spec, retry, window)  # type: ignore[arg-type]


def test_a_crashing_worker_loses_only_its_file(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import elo.data.extract

    monkeypatch.setattr(elo.data.extract, "extract_one", _crash_on_marked)
    crash = tmp_path / "crash.mp4"
    crash.write_bytes((corpus / "a/with_audio.mp4").read_bytes())
    paths = [corpus / n for n in GOOD] + [crash]
    s = extract_paths(
        paths, tmp_path / "cache", spec_from_config(_cfg()), workers=2, progress=False
    )
    assert (s.ok, s.skipped) == (len(GOOD), 1)
    (rec,) = [r for r in s.records if r["status"] == "skipped"]
    assert rec["path"] == str(crash) and "worker crashed" in rec["reason"]


def _entry_arrays(cache: Path, video: Path, spec: object) -> dict[str, object]:
    entry = ClipCache(cache).entry(video, spec)  # type: ignore[arg-type]
    out: dict[str, object] = {"frame_index": entry.clips()["frame_index"]}  # type: ignore[index]
    for m in spec.modalities:  # type: ignore[attr-defined]
        out[m] = np.array(entry.open_array(spec.modality_tag(m)))  # type: ignore[attr-defined]
    return out


def test_partial_reextraction_stays_aligned_across_path_spellings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rgb extracted through a relative path, then rgb+flow through the absolute
    path (as elo-extract DIR and elo-search do) must cut flow at the frames rgb was
    cut at: clip starts are seeded from the resolved file, not the path as typed, and
    clips.json is never rewritten, so rgb and flow share one set of starts."""
    video = write_video(tmp_path / "v" / "long.mp4", moving_square(64, 48, 48, seed=3), fps=8.0)
    cfg = load_config(
        "demo", ["data.clip.size=32", "data.clip.sampling=random", "data.clip.per_video=3"]
    )
    rgb, both = spec_from_config(cfg, ["rgb"]), spec_from_config(cfg, ["rgb", "flow"])
    # DIS flow differs slightly on the first clip a process computes (measured up to
    # 0.07 px, then bit-identical): warm it up so the comparison below can be exact
    warm = write_video(tmp_path / "warm" / "w.mp4", moving_square(16, 32, 32, seed=1), fps=8.0)
    extract_paths([warm], tmp_path / "warm-cache", both, workers=0, progress=False)
    monkeypatch.chdir(tmp_path)
    partial = tmp_path / "partial"
    s1 = extract_paths([Path("v/long.mp4")], partial, rgb, workers=0, progress=False)
    index_before = _entry_arrays(partial, video, rgb)["frame_index"]
    s2 = extract_paths([video.resolve()], partial, both, workers=0, progress=False)
    assert (s1.ok, s2.ok) == (1, 1)
    # one pass over the absolute path, both modalities at once: the reference
    whole = tmp_path / "whole"
    extract_paths([video.resolve()], whole, both, workers=0, progress=False)
    a, b = _entry_arrays(partial, video, both), _entry_arrays(whole, video, both)
    assert a["frame_index"] == index_before == b["frame_index"]
    assert len(set(a["frame_index"])) == 3  # type: ignore[arg-type]
    np.testing.assert_array_equal(a["rgb"], b["rgb"])  # type: ignore[arg-type]
    np.testing.assert_array_equal(a["flow"], b["flow"])  # type: ignore[arg-type]
    # a symlink and a ./-spelled path are the same identity: nothing is re-extracted
    (tmp_path / "alias.mp4").symlink_to(video)
    s3 = extract_paths(
        [Path("alias.mp4"), Path("./v/../v/long.mp4")], partial, both, workers=0, progress=False
    )
    assert (s3.ok, s3.cached) == (0, 2)


def test_forkserver_preload_follows_the_modality_registry() -> None:
    """The forkserver imports the module of every registered modality once, so a
    drop-in modality is preloaded like the built-in ones (and forgotten with it)."""
    from elo.data.extract import _forkserver_preload
    from elo.model.modality import MODALITIES, Modality

    built_in = _forkserver_preload()
    assert built_in[:2] == ["elo.data.extract", "elo.data.video"]
    assert {"elo.modalities.rgb", "elo.modalities.flow", "elo.modalities.audio"} <= set(built_in)
    drop_in = type("DropIn", (Modality,), {"__module__": "my_lab.depth", "name": "depth_t"})
    MODALITIES.add("depth_t", drop_in)
    try:
        with_drop_in = _forkserver_preload()
    finally:
        MODALITIES.remove("depth_t")
    assert with_drop_in == [*built_in[:2], *sorted([*built_in[2:], "my_lab.depth"])]
    assert _forkserver_preload() == built_in
