"""Deterministic content of a run folder (benchmarks/behaviour_digest.sh): a hash of
every tensor of every weights / checkpoint file and every JSON / JSON-lines / YAML value,
leaving out what changes from run to run (times, pids, paths, memory readings, Ray's
own files). Two runs of the same seeded commands on the same code give the same lines.

    python benchmarks/behaviour_digest.py RUN_FOLDER > digest.txt
    python benchmarks/behaviour_digest.py --diff before/digest.txt after/digest.txt

``--diff`` lists every value that differs between two digests, one per line, with JSON
documents compared key by key (``file: a.b.c: old -> new``; ``<absent>`` for a key one
side lacks), and the count; exit 0 when they are identical, 1 otherwise.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

VOLATILE = {
    "node_id",
    "seconds",
    "time",
    "timestamp",
    "started",
    "finished",
    "worker_pid",
    "worker_rss_mb",
    "trial_peak_mb",
    "pid",
    "host",
    "hostname",
    "elapsed",
    "wall",
    "date",
    "created",
    "trial_id",
    "run",
    "path",
    "out",
    "clips_s",
    "clips_per_s",
    "eta",
    "logdir",
    "dir",
}


def scrub(x: Any) -> Any:
    if isinstance(x, dict):
        return {
            k: scrub(v)
            for k, v in sorted(x.items())
            if k not in VOLATILE and not k.endswith("_s") and "time" not in k
        }
    if isinstance(x, list):
        return [scrub(v) for v in x]
    if isinstance(x, str) and ("/tmp/" in x or ("T" in x and ":" in x)):
        return "<str>"
    return x


def _sha(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()[:16]


def _walk(rel: Path, obj: Any, pre: str = "") -> None:
    import torch

    if isinstance(obj, torch.Tensor):
        print(rel, pre, _sha(obj.detach().cpu().numpy().tobytes()))
    elif isinstance(obj, dict):
        for k in sorted(obj, key=str):
            _walk(rel, obj[k], f"{pre}.{k}")
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            _walk(rel, v, f"{pre}[{i}]")
    elif isinstance(obj, int | float | bool | str) or obj is None:
        print(rel, pre, scrub(obj))


def digest_file(p: Path, rel: Path) -> None:
    if p.suffix == ".safetensors":
        from safetensors.numpy import load_file

        arrays = load_file(str(p))
        for k in sorted(arrays):
            print(rel, k, _sha(arrays[k].tobytes()))
    elif p.suffix == ".pt":
        import torch

        _walk(rel, torch.load(p, weights_only=True, map_location="cpu"))
    elif p.suffix == ".json":
        print(rel, json.dumps(scrub(json.loads(p.read_text())), sort_keys=True))
    elif p.suffix == ".jsonl":
        for i, line in enumerate(p.read_text().splitlines()):
            print(rel, i, json.dumps(scrub(json.loads(line)), sort_keys=True))
    elif p.suffix == ".yaml":
        import yaml

        doc = yaml.safe_load(p.read_text())
        print(rel, json.dumps(scrub(doc), sort_keys=True, default=str))
    else:
        print(rel, "file")


def main(root: Path) -> None:
    for p in sorted(root.rglob("*")):
        parts = p.relative_to(root).parts
        if not p.is_file() or "ray" in parts or "tb" in parts or p.suffix == ".log":
            continue
        if "events.out" in p.name:
            continue
        digest_file(p, p.relative_to(root))


def _entries(path: Path) -> dict[str, Any]:
    """A digest's lines as ``{name: value}``: ``file JSON`` lines keyed by the file,
    ``file key value`` lines (a tensor's hash, a JSON-lines row) by file and key."""
    out: dict[str, Any] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        rel, _, rest = line.partition(" ")
        try:
            out[rel] = json.loads(rest)
            continue
        except json.JSONDecodeError:
            pass
        key, _, tail = rest.partition(" ")
        try:
            out[f"{rel} {key}"] = json.loads(tail)
        except json.JSONDecodeError:
            out[f"{rel} {key}"] = tail
    return out


def _flat(x: Any, pre: str = "") -> dict[str, Any]:
    if not isinstance(x, dict) or not x:
        return {pre: x}
    out: dict[str, Any] = {}
    for k, v in x.items():
        out.update(_flat(v, f"{pre}.{k}" if pre else str(k)))
    return out


def diff(a: Path, b: Path) -> list[str]:
    """Every value that differs between digests ``a`` and ``b``."""
    ea, eb = _entries(a), _entries(b)
    lines = []
    for name in sorted(set(ea) | set(eb)):
        va, vb = ea.get(name, "<absent>"), eb.get(name, "<absent>")
        if va == vb:
            continue
        fa, fb = _flat(va), _flat(vb)
        for key in sorted(set(fa) | set(fb)):
            if fa.get(key, "<absent>") != fb.get(key, "<absent>"):
                where = f"{name}: {key}" if key else name
                lines.append(f"{where}: {fa.get(key, '<absent>')} -> {fb.get(key, '<absent>')}")
    return lines


if __name__ == "__main__":
    if sys.argv[1] == "--diff":
        found = diff(Path(sys.argv[2]), Path(sys.argv[3]))
        print("\n".join([*found, f"{len(found)} differing values"]))
        sys.exit(1 if found else 0)
    main(Path(sys.argv[1]))
