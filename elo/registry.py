"""A small generic registry (timm-style): decorator registration, lookup, glob listing,
discovery of drop-in modules, and entry-point plug-ins.

>>> REG = Registry("widget")
>>> @REG.register("spinner")
... class Spinner: ...
>>> REG.get("spinner") is Spinner
True
>>> REG.list("spin*")
['spinner']
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.metadata
import logging
import pkgutil
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from elo.errors import ConfigError

T = TypeVar("T")
Names = list[str]  # ``list`` is a method name inside Registry
log = logging.getLogger(__name__)


class Registry(Generic[T]):
    """Maps names to classes or builder functions of one kind.

    ``packages`` (e.g. ``("tasks",)``) are imported module by module on first lookup,
    so a new file dropped there registers itself; modules whose name starts with ``_``
    are machinery and skipped. A plain module name is just imported.
    ``entry_point_group`` (e.g. ``"elo.tasks"``) loads plug-ins installed with pip: an
    entry point naming a module imports it (it registers itself), one naming an object
    adds it under the entry point's name. ``follows`` is a registry whose discovery runs
    first, for kinds registered by the files of another kind (a task file registers its
    views: ``VIEWS`` follows ``TASKS``).
    """

    def __init__(
        self,
        kind: str,
        *,
        packages: tuple[str, ...] = (),
        entry_point_group: str | None = None,
        follows: Registry[Any] | None = None,
    ) -> None:
        self.kind = kind
        self.follows = follows
        self.packages = packages
        self.entry_point_group = entry_point_group
        self._items: dict[str, T] = {}
        self._origins: dict[str, str] = {}
        self._discovered = False

    # -- registration -------------------------------------------------------------
    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator: ``@REG.register("name")``; the name defaults to ``obj.name``."""

        def deco(obj: T) -> T:
            key = name or getattr(obj, "name", None) or getattr(obj, "__name__", None)
            if not isinstance(key, str) or not key:
                raise ConfigError(f"cannot register {obj!r} as a {self.kind}: give it a name")
            self.add(key, obj)
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        origin = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', obj)}"
        if name in self._items and self._origins[name] != origin:
            raise ConfigError(
                f"duplicate {self.kind} name {name!r}: defined by {self._origins[name]} "
                f"and {origin}; rename one of them"
            )
        self._items[name] = obj
        self._origins[name] = origin

    def remove(self, name: str) -> None:
        """Forget ``name`` (used by tests and by plug-in reloads)."""
        self._items.pop(name, None)
        self._origins.pop(name, None)

    # -- lookup -------------------------------------------------------------------
    def get(self, name: str) -> T:
        self.discover()
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise ConfigError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def __contains__(self, name: object) -> bool:
        self.discover()
        return name in self._items

    def list(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style glob, sorted."""
        self.discover()
        return sorted(n for n in self._items if fnmatch.fnmatchcase(n, pattern))

    def declared(self) -> Names:
        """Names registered so far and those of the entry points, sorted, without
        importing a module (for ``--help``, which must stay instant)."""
        names = set(self._items)
        if self.entry_point_group is not None:
            names |= {
                ep.name for ep in importlib.metadata.entry_points(group=self.entry_point_group)
            }
        return sorted(names)

    def build(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        obj: Any = self.get(name)
        return obj(*args, **kwargs)

    def origin(self, name: str) -> str:
        self.get(name)
        return self._origins[name]

    # -- discovery ----------------------------------------------------------------
    def discover(self, force: bool = False) -> None:
        """Import every non-underscore module of ``packages`` and load entry points
        (after the discovery of the registry this one ``follows``)."""
        if self._discovered and not force:
            return
        self._discovered = True
        if self.follows is not None:
            self.follows.discover(force)
        for package in self.packages:
            pkg = importlib.import_module(package)
            for mod in pkgutil.iter_modules(getattr(pkg, "__path__", [])):
                if not mod.name.startswith("_"):
                    importlib.import_module(f"{package}.{mod.name}")
        if self.entry_point_group is not None:
            for ep in importlib.metadata.entry_points(group=self.entry_point_group):
                try:
                    loaded = ep.load()
                except Exception as exc:  # a broken plug-in must not break the tool
                    log.warning("skipping %s plug-in %r: %s", self.kind, ep.name, exc)
                    continue
                # A plug-in module registers itself on import; a class is added by name.
                if not isinstance(loaded, type(importlib)) and ep.name not in self._items:
                    self.add(ep.name, loaded)
