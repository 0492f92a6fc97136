"""The key of a dependency venv: a hash of what decides its contents and nothing else.

The project's dependency ranges, optional dependencies, Python requirement and build
requirements (pyproject.toml) and the exact pins (constraints.txt). A change elsewhere in
pyproject.toml (tool settings, entry points, package data) keeps the key, so CI and
`make` reuse the shared venv; the light overlay that installs the checkout is rebuilt on
every such change anyway (Makefile: overlay, stamped with the whole file).
"""

import hashlib
import json
import tomllib
from pathlib import Path

root = Path(__file__).resolve().parents[1]
doc = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
project = doc.get("project", {})
decides = {
    "dependencies": project.get("dependencies", []),
    "optional-dependencies": project.get("optional-dependencies", {}),
    "requires-python": project.get("requires-python"),
    "build-system": doc.get("build-system", {}).get("requires", []),
    "constraints": (root / "constraints.txt").read_text(encoding="utf-8"),
}
print(hashlib.sha256(json.dumps(decides, sort_keys=True).encode()).hexdigest()[:16])
