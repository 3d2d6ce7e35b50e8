"""User-facing errors: the CLI prints their one-line message without a traceback."""

from __future__ import annotations

import argparse


class BenchmarkError(Exception):
    """A problem the user can fix (bad config, missing data); the message is one clear line."""


class ImageError(BenchmarkError):
    """An image file that cannot be used; raised as ``ImageError(f"{path}: {reason}")``."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are a BenchmarkError: one ``error:`` line and exit 2, like any bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise BenchmarkError(f"{message} (see --help)")
