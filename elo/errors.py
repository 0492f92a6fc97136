"""User-facing errors: one clear line naming the thing and the fix, no traceback."""

from __future__ import annotations


class EloError(Exception):
    """An error the user can cause and fix (bad path, bad key, unknown task...).

    The CLI prints ``str(err)`` on one line and exits with code 2.
    """


class ConfigError(EloError):
    """A configuration file, override or weights file is invalid."""


class DataError(EloError):
    """A data folder, manifest or video file cannot be used."""


class TransientDataError(DataError):
    """A file could not be read for a reason outside it (I/O error, permissions, too
    many open files, out of memory): reported, never remembered as a bad file."""


class DiskError(EloError):
    """The disk refused a write (full, read-only, no permission); names the path."""


class LockedError(EloError):
    """Another process holds the folder (a run directory or a cache) for writing."""
