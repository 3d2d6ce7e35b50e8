"""User-facing errors: the CLI prints their one-line message without a traceback."""

from __future__ import annotations


class BenchmarkError(Exception):
    """A problem the user can fix (bad config, missing data); the message is one clear line."""


class ImageError(BenchmarkError):
    """An image file that cannot be used; raised as ``ImageError(f"{path}: {reason}")``."""
