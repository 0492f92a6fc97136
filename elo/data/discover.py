"""Finding the media files of a dataset folder, through symlinked folders.

Datasets on shared storage are often assembled from symlinks (``UCF-101/<class>`` ->
``/mnt/store/ucf/<class>``), so :func:`walk_media` follows symlinked folders. A link
whose resolved folder is one the walk is already inside, or holds one
(``a/b/up -> ../..``), would repeat the tree forever: it is skipped, logged with its
target, and counted in :attr:`MediaScan.loops`. A link to nothing (the storage is not
mounted) is counted in :attr:`MediaScan.dangling`. When nothing is found,
:meth:`MediaScan.summary` names what the walk saw, e.g. ``8 folders, 0 videos; 8 are
symlinks to missing targets under /mnt/store/ucf``, so the error says why rather than
"no videos".

Entries whose name starts with ``.`` are left out. Entries named like a wanted file
are returned whatever they are (a folder, a dangling or looping link) so that
extraction reports them as skipped with a reason instead of leaving them out silently.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from elo.errors import DataError

__all__ = ["MediaScan", "walk_media"]

log = logging.getLogger(__name__)


@dataclass
class MediaScan:
    """What :func:`walk_media` found under ``root``."""

    root: Path
    #: entries named with a wanted suffix, sorted (paths through the links, not resolved)
    files: list[Path] = field(default_factory=list)
    #: folders entered below the root (symlinked ones included)
    folders: int = 0
    #: other files seen (names without a wanted suffix)
    other_files: int = 0
    #: symlinked folders followed: (link, resolved folder)
    links: list[tuple[Path, Path]] = field(default_factory=list)
    #: symlinks whose target does not exist: (link, target as written)
    dangling: list[tuple[Path, str]] = field(default_factory=list)
    #: symlinked folders skipped because they lead back into the walk: (link, resolved)
    loops: list[tuple[Path, Path]] = field(default_factory=list)
    #: folders that could not be listed: (folder, OS error text)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)

    def summary(self, noun: str = "videos") -> str:
        """One line of what was seen, e.g. ``8 folders, 0 videos; 8 are symlinks to
        missing targets under /mnt/x``; the parts without anything to say are left out."""
        parts = [f"{self.folders} folders, {len(self.files)} {noun}"]
        if self.other_files:
            parts[0] += f", {self.other_files} other files"
        if self.links:
            parts.append(
                f"{len(self.links)} are symlinked folders into "
                f"{_common_parent([t for _, t in self.links])}"
            )
        if self.dangling:
            targets = [Path(os.path.join(ln.parent, t)) for ln, t in self.dangling]
            parts.append(
                f"{len(self.dangling)} are symlinks to missing targets under "
                f"{_common_parent(targets)} (not mounted or moved?)"
            )
        if self.loops:
            link, target = self.loops[0]
            parts.append(
                f"{len(self.loops)} symlink loops skipped ({link} -> {target}, a folder the "
                "walk was already inside)"
            )
        if self.unreadable:
            folder, why = self.unreadable[0]
            parts.append(f"{len(self.unreadable)} folders could not be read ({folder}: {why})")
        return "; ".join(parts)


def _common_parent(paths: list[Path]) -> str:
    if len(paths) == 1:
        return str(paths[0])
    try:
        return os.path.commonpath([str(p) for p in paths]) or "/"
    except ValueError:  # mixed absolute and relative
        return str(paths[0])


def walk_media(root: str | Path, suffixes: Collection[str]) -> MediaScan:
    """Every entry under ``root`` whose name ends in one of ``suffixes`` (lower case,
    with the dot), following symlinked folders and skipping symlink loops (module
    docstring). Raises :class:`DataError` when ``root`` is not a folder."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder of videos")
    found = MediaScan(root)
    wanted = {s.lower() for s in suffixes}
    _walk(root, [os.path.realpath(root)], wanted, found)
    found.files.sort()
    for link, target in found.loops:
        log.warning(
            "%s: skipped the symlink %s -> %s: it leads back into a folder the walk is in (a loop)",
            root,
            link,
            target,
        )
    return found


def _walk(folder: Path, inside: list[str], wanted: set[str], found: MediaScan) -> None:
    """Walk ``folder``; ``inside`` holds the resolved paths of the folders the walk is in
    (``folder``'s own last). A symlinked folder that resolves to one of them, or to a
    folder above one of them, would lead the walk back to where it is: a loop."""
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        found.unreadable.append((folder, exc.strerror or type(exc).__name__))
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = folder / entry.name
        if Path(entry.name).suffix.lower() in wanted:
            found.files.append(path)  # whatever it is: extraction says why if unusable
            continue
        is_link = entry.is_symlink()
        try:
            is_dir = entry.is_dir(follow_symlinks=True)
        except OSError:  # e.g. a link loop of its own (ELOOP)
            is_dir = False
        if not is_dir:
            if is_link and not os.path.exists(path):
                _broken_link(path, found)
            else:
                found.other_files += 1
            continue
        real = os.path.realpath(path)
        if any(r == real or r.startswith(real + os.sep) for r in inside):
            # it leads to a folder the walk is in, or one holding it: a loop
            found.loops.append((path, Path(real)))
            continue
        found.folders += 1
        if is_link:
            found.links.append((path, Path(real)))
        _walk(path, [*inside, real], wanted, found)


def _broken_link(path: Path, found: MediaScan) -> None:
    """A symlink that resolves to nothing: a loop of links (ELOOP) or a missing target."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            found.loops.append((path, Path(os.readlink(path))))
            return
    found.dangling.append((path, os.readlink(path)))
