"""Term keys, term enumeration and the weights-file format."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from elo.errors import ConfigError
from elo.model.heads import TASKS, TaskHead
from elo.model.objective import Weights, enumerate_terms, weights_from_argument
from elo.model.terms import TermKey


@pytest.mark.parametrize(
    "text",
    ["rgb/reconstruction", "rgb->flow/transfer", "rgb+audio/contrastive", "distill/flow->rgb@3"],
)
def test_term_key_round_trip(text: str) -> None:
    assert str(TermKey.parse(text)) == text


@pytest.mark.parametrize("bad", ["rgb", "rgb/", "RGB/x", "distill/flow->rgb", "a->b+c/x"])
def test_malformed_term_key(bad: str) -> None:
    with pytest.raises(ConfigError, match="malformed term key"):
        TermKey.parse(bad)


@pytest.fixture()
def fake_tasks() -> Iterator[list[str]]:
    class One(TaskHead):
        name = "zz_one"
        arity = "one"

        @classmethod
        def supports(cls, modalities: tuple[str, ...]) -> bool:
            return modalities != ("audio",)

    class Ordered(TaskHead):
        name = "zz_ordered"
        arity = "ordered"

    class Pair(TaskHead):
        name = "zz_pair"
        arity = "pair"

    for cls in (One, Ordered, Pair):
        TASKS.add(cls.name, cls)
    yield ["zz_one", "zz_ordered", "zz_pair"]
    for cls in (One, Ordered, Pair):
        TASKS.remove(cls.name)


def test_enumerate_terms(fake_tasks: list[str]) -> None:
    terms = enumerate_terms(
        ["rgb", "flow", "audio"],
        fake_tasks,
        distill_teachers=["flow", "audio", "rgb"],
        distill_student="rgb",
        distill_levels=[2, 3],
    )
    assert [str(t) for t in terms] == [
        "rgb/zz_one",
        "flow/zz_one",
        "rgb->flow/zz_ordered",
        "rgb->audio/zz_ordered",
        "flow->rgb/zz_ordered",
        "flow->audio/zz_ordered",
        "audio->rgb/zz_ordered",
        "audio->flow/zz_ordered",
        "rgb+flow/zz_pair",
        "rgb+audio/zz_pair",
        "flow+audio/zz_pair",
        "distill/flow->rgb@2",
        "distill/flow->rgb@3",
        "distill/audio->rgb@2",
        "distill/audio->rgb@3",
    ]


def _terms() -> list[TermKey]:
    return [TermKey.parse(k) for k in ("rgb/a", "flow/a", "rgb+flow/b", "distill/flow->rgb@2")]


def _write(tmp_path: Path, weights: object) -> Path:
    p = tmp_path / "w.json"
    p.write_text(json.dumps({"weights": weights}))
    return p


def test_weights_load_and_active(tmp_path: Path) -> None:
    w = Weights.load(
        _write(
            tmp_path, {"rgb/a": 0.5, "flow/a": 0.0, "rgb+flow/b": 1, "distill/flow->rgb@2": 0.1}
        ),
        _terms(),
    )
    assert [str(t) for t in w.active] == ["rgb/a", "rgb+flow/b", "distill/flow->rgb@2"]
    assert w.as_vector() == [0.5, 0.0, 1.0, 0.1]
    assert Weights(_terms(), w.to_json()["weights"]).values == w.values


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (
            {"rgb/a": 0.5, "flow/a": 0, "rgb+flow/b": 1, "distill/flow->rgb@2": 0, "rgb/aa": 1},
            r"unknown term 'rgb/aa' \(did you mean 'rgb/a'\?\)",
        ),
        ({"rgb/a": 0.5, "flow/a": 0}, r"missing weight for term 'rgb\+flow/b'"),
        (
            {"rgb/a": 1.5, "flow/a": 0, "rgb+flow/b": 1, "distill/flow->rgb@2": 0},
            r"'rgb/a' is 1.5, outside \[0, 1\]",
        ),
        (
            {"rgb/a": "high", "flow/a": 0, "rgb+flow/b": 1, "distill/flow->rgb@2": 0},
            r"'rgb/a' must be a number in \[0, 1\], got 'high'",
        ),
        (
            {"rgb/a": -0.1, "flow/a": 0, "rgb+flow/b": 1, "distill/flow->rgb@2": 0},
            r"'rgb/a' is -0.1, outside",
        ),
        ({"rgb": 1}, r"malformed term key 'rgb'"),
    ],
)
def test_weights_file_validation_messages(tmp_path: Path, weights: object, message: str) -> None:
    path = _write(tmp_path, weights)
    with pytest.raises(ConfigError, match=message) as info:
        Weights.load(path, _terms())
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_weights_file_shape_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match=r"bad.json: not valid JSON"):
        Weights.load(bad, _terms())
    bad.write_text(json.dumps({"rgb/a": 1}))
    with pytest.raises(ConfigError, match=r'expected \{"weights"'):
        Weights.load(bad, _terms())
    with pytest.raises(ConfigError, match="weights file not found"):
        Weights.load(tmp_path / "nope.json", _terms())


def test_weights_from_pairs_and_only_zero_the_unlisted_terms(tmp_path: Path) -> None:
    pairs = Weights.from_pairs("rgb/a=0.5, rgb+flow/b=1", _terms())
    assert pairs.as_vector() == [0.5, 0.0, 1.0, 0.0]
    only = Weights.only("distill/flow->rgb@2,flow/a", _terms())
    assert [str(t) for t in only.active] == ["flow/a", "distill/flow->rgb@2"]
    assert only.as_vector() == [0.0, 1.0, 0.0, 1.0]
    # a file wins over pairs when the argument names one, even with "=" in its name
    path = _write(tmp_path, {"rgb/a": 1, "flow/a": 1, "rgb+flow/b": 0, "distill/flow->rgb@2": 0})
    odd = tmp_path / "w=1.json"
    odd.write_text(path.read_text())
    assert weights_from_argument(str(odd), _terms()).as_vector() == [1.0, 1.0, 0.0, 0.0]
    assert weights_from_argument("flow/a=0.25", _terms()).as_vector() == [0.0, 0.25, 0.0, 0.0]


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("rgb/aa=1", r"unknown term 'rgb/aa' \(did you mean 'rgb/a'\?\)"),
        ("rgb/a=2", r"'rgb/a' is 2.0, outside \[0, 1\]"),
        ("rgb/a=high", r"'rgb/a=high' is not term=λ"),
        ("rgb/a=1,flow/a", r"'flow/a' is not term=λ"),
        ("rgb/a", r"weights file not found: rgb/a; give a JSON file or term=λ pairs"),
    ],
)
def test_weights_argument_errors_are_one_line(arg: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        weights_from_argument(arg, _terms())
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="names no term"):
        Weights.only(" , ", _terms())
    with pytest.raises(ConfigError, match="names no term"):
        Weights.from_pairs(",", _terms())


def test_config_all_tasks_minus_excluded(fake_tasks: list[str]) -> None:
    from elo.model.objective import terms_from_config

    no_distill = {"student": "rgb", "teachers": [], "levels": []}
    obj = {"modalities": ["rgb", "flow"], "tasks": "all", "exclude": ["zz_pair"]}
    cfg = {"objective": {**obj, "distill": no_distill}}
    keys = [str(t) for t in terms_from_config(cfg)]
    assert "rgb/zz_one" in keys and "rgb->flow/zz_ordered" in keys
    assert not any("zz_pair" in k for k in keys)
    cfg["objective"]["exclude"] = ["zz_nope"]
    with pytest.raises(ConfigError, match="unknown task 'zz_nope'"):
        terms_from_config(cfg)
