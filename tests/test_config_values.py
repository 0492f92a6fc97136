"""Every numeric config value is checked when the config is loaded, before any work:
each numeric key of configs/ (found by walking the YAML, so a new key is covered
without an edit here) is given bad values (0 where 0 is invalid, a negative number,
NaN, a value of the wrong type, and one past an upper bound) through the console script
that reads it. Each must exit 2 with one line naming the key, the value and the allowed
range, and leave the working folder exactly as it was: nothing extracted, nothing
written."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _media import moving_square, write_video
from _scripts import main_of, python_c

from elo.config import configs_dir, load_config
from elo.config_values import rule_for

#: keys where 0 is a valid value, and why (elo/config_values.py RULES agrees: checked)
ZERO_OK = {
    "seed": "any non-negative seed",
    "data.clip.seed": "any non-negative seed",
    "fitness.seed": "any non-negative seed (null: the experiment's)",
    "data.clip.extra_frames": "0: the cache holds exactly the frames the model sees",
    "data.clip.extra_pixels": "0: the cache holds exactly the pixels the model sees",
    "data.clip.stride": "0: sliding windows step by clip.frames",
    "data.clip.per_video": "0: every sliding window, uncapped",
    "data.demo.zipf": "0: classes of equal size",
    "data.max_files": "baselines: 0 = every file found",
    "objective.norm_momentum": "0: each term's scale is its last |loss|",
    "train.momentum": "0: plain SGD",
    "train.weight_decay": "0: no decay",
    "train.grad_clip": "0: no clipping",
    "train.min_lr_ratio": "0: the cosine decays to 0",
    "train.warmup_steps": "0: no warm-up",
    "train.checkpoint_every": "0: a checkpoint at the end only",
    "train.num_workers": "0: data loaded in the training process",
    "train.log_every": "0: no metric lines (baselines)",
    "search.gpus_per_trial": "0: CPU trials",
    "search.memory_per_trial_gb": "0: no memory request to Ray",
    "search.max_retries": "0: a failed trial is not restarted",
    "search.collapse_std": "0: no collapse rejection",
    "search.sparse_threshold": "0: no λ is set to 0",
    "search.ga.crossover": "0: offspring are mutated copies",
    "search.pbt.resample_probability": "0: a copied λ is always scaled, never redrawn",
    "fitness.exponent": "0: a uniform prior",
    "fitness.zipf_exponent": "0: a uniform prior",
    "fitness.zipf_weight": "0: no Zipf penalty",
    "fitness.agreement_weight": "0: the Zipf penalty alone",
    "fitness.fit_range": "0: the fit starts at the first eigenvalue",
    "fitness.rung_noise": "0: exact scores at every rung",
    "augment.flip_p": "a probability; 0 switches the augmentation off",
    "augment.jitter_p": "a probability; 0 switches the augmentation off",
    "augment.gray_p": "a probability; 0 switches the augmentation off",
    "augment.blur_p": "a probability; 0 switches the augmentation off",
    "augment.brightness": "0: no brightness jitter",
    "augment.contrast": "0: no contrast jitter",
    "augment.saturation": "0: no saturation jitter",
    "augment.hue": "0: no hue jitter",
    "byol.tau_base": "0: the target follows the online network",
}
#: no numeric key takes a negative value
NEGATIVE_OK: dict[str, str] = {}
#: keys whose shipped default is null and that are not numbers
NOT_NUMERIC_NULLS = {"data.split": "a split name (train | test) of a labeled dataset"}


def _walk(doc: dict[str, Any], pre: str) -> Iterator[tuple[str, Any]]:
    for k, v in doc.items():
        if isinstance(v, dict):
            yield from _walk(v, f"{pre}{k}.")
        else:
            yield f"{pre}{k}", v


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _numeric_keys() -> list[tuple[str, str, str]]:
    """(scope, key, file stem) of every numeric or null leaf of the YAML in configs/:
    scope ``baseline`` for configs/baseline, else ``experiment``."""
    out: dict[tuple[str, str], str] = {}
    for f in sorted(configs_dir().rglob("*.yaml")):
        doc = yaml.safe_load(f.read_text()) or {}
        doc.pop("defaults", None)
        group = f.parent.name
        scope = "baseline" if group == "baseline" else "experiment"
        pre = "" if group in ("experiment", "baseline") else f"{group}."
        for key, v in _walk(doc, pre):
            numeric = _is_number(v) or (isinstance(v, list) and v and all(map(_is_number, v)))
            if numeric or (v is None and key not in NOT_NUMERIC_NULLS):
                out.setdefault((scope, key), f.stem)
    return [(scope, key, stem) for (scope, key), stem in sorted(out.items())]


KEYS = _numeric_keys()


def test_the_walk_finds_the_numbers_and_the_rules_agree_with_the_allow_lists() -> None:
    """Every numeric key found has a rule; 0 is allowed exactly for ZERO_OK, a negative
    value for none; the null defaults are numbers with a rule or named as not numbers."""
    found = {key for _, key, _ in KEYS}
    assert {"data.clip.size", "train.lr", "search.population", "fitness.k"} <= found
    assert {"search.steps", "augment.crop_scale", "seed", "heads.byol.hidden_dim"} <= found
    for key in found:
        rule = rule_for(key)
        assert rule is not None, f"{key}: numeric in configs/ but without a rule"
        zero = [0] if rule.many else 0
        assert rule.allows(zero) == (key in ZERO_OK), key
        assert not rule.allows([-1] if rule.many else -1), key
    assert set(ZERO_OK) <= found and not NEGATIVE_OK


def _bad_values(key: str) -> list[str]:
    """Override texts that are invalid for ``key`` (as YAML): 0 unless allowed, -1, NaN,
    the wrong type, 1.5 for an integer, one past an upper bound."""
    rule = rule_for(key)
    assert rule is not None
    vals = ["-1", "nan", "abc"]
    if key not in ZERO_OK:
        vals.insert(0, "0")
    if rule.integer:
        vals.append("1.5")
    if rule.hi is not None:
        vals.append(repr(rule.hi + 1))
    if rule.many:
        vals = [f"[{'.nan' if v == 'nan' else v}]" for v in vals]
    return vals


def _cases() -> list[tuple[str, str, str, str]]:
    return [(scope, key, stem, v) for scope, key, stem in KEYS for v in _bad_values(key)]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working folder with a labeled folder of two real MP4 videos (what the commands
    would extract from, and a baseline would read frames of)."""
    root = tmp_path_factory.mktemp("values")
    for c in ("a", "b"):
        write_video(root / "videos" / c / f"{c}.mp4", moving_square(16, 48, 48), fps=8.0)
    return root


def _experiment_for(key: str) -> str:
    """An experiment whose composed config has ``key`` (overrides name existing keys)."""
    for name in sorted(p.stem for p in (configs_dir() / "experiment").glob("*.yaml")):
        node: Any = load_config(name)
        for part in key.split("."):
            node = node.get(part, KeyError) if isinstance(node, dict) else KeyError
        if node is not KeyError:
            return name
    raise AssertionError(f"no experiment holds {key}")


def _commands(scope: str, key: str, stem: str, work: Path) -> list[tuple[str, list[str]]]:
    """(command, arguments) of each console script that reads ``key``."""
    data, out = str(work / "videos"), str(work / "out")
    if scope == "baseline":
        return [("train", ["--objective", stem, "--data", data, "--out", out])]
    group = key.split(".")[0]
    if group == "fitness":
        return [("search", ["--fitness", stem, "--data", data, "--out", out])]
    if group == "search":
        return [("search", ["--data", data, "--out", out])]
    config = ["--config", _experiment_for(key)]
    train = ("train", [*config, "--data", data, "--out", out, "--no-progress"])
    if group == "data":
        return [train, ("extract", [data, "--cache", str(work / "cache"), *config])]
    return [train]


def _snapshot(root: Path) -> set[tuple[str, int]]:
    return {(str(p.relative_to(root)), p.stat().st_size) for p in root.rglob("*")}


@pytest.mark.parametrize(("scope", "key", "stem", "value"), _cases())
def test_a_bad_number_is_refused_in_one_line_before_any_work(
    work: Path,
    capsys: pytest.CaptureFixture[str],
    scope: str,
    key: str,
    stem: str,
    value: str,
) -> None:
    rule = rule_for(key)
    assert rule is not None
    parsed = yaml.safe_load(value)
    if isinstance(parsed, str):  # as elo.config.parse_override reads it
        try:
            parsed = float(parsed)
        except ValueError:
            pass
    before = _snapshot(work)
    for command, argv in _commands(scope, key, stem, work):
        rc = main_of(command)([*argv, f"{key}={value}"])
        err = capsys.readouterr().err
        assert rc == 2, (command, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert f"config key '{key}' must be {rule.describe()}, got {parsed!r}" in lines[0]
        assert _snapshot(work) == before, f"elo-{command} wrote or extracted something"


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        ("train", ["--data", "{videos}", "--out", "{out}", "data.clip.size=0"]),
        ("extract", ["{videos}", "--cache", "{out}", "data.clip.size=0"]),
        ("search", ["--data", "{videos}", "--out", "{out}", "--fitness", "zipf", "fitness.k=-1"]),
    ],
)
def test_the_console_scripts_refuse_before_extracting(
    work: Path, command: str, argv: list[str]
) -> None:
    """The same through the real console-script entry points in a fresh process."""
    args = [a.format(videos=work / "videos", out=work / "out") for a in argv]
    before = _snapshot(work)
    proc = subprocess.run(
        [sys.executable, "-c", python_c(command), *args], capture_output=True, text=True
    )
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith(f"elo-{command}: error: config key ")
    assert _snapshot(work) == before
