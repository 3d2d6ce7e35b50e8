"""User-facing errors: the CLI prints their one-line message without a traceback."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable


class BenchmarkError(Exception):
    """A problem the user can fix (bad config, missing data); the message is one clear line."""


class ImageError(BenchmarkError):
    """An image file that cannot be used; raised as ``ImageError(f"{path}: {reason}")``."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are a BenchmarkError: one ``error:`` line and exit 2, like any bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise BenchmarkError(f"{message} (see --help)")


def command(main: Callable[..., int]) -> Callable[..., int]:
    """Decorate a command's ``main(argv) -> exit status``: a ``BenchmarkError`` (bad input, bad
    settings, a usage error) becomes one ``error:`` line on stderr and exit status 2."""

    @functools.wraps(main)
    def run(*args: object, **kwargs: object) -> int:
        try:
            return main(*args, **kwargs)
        except BenchmarkError as error:
            print(f"error: {error}", file=sys.stderr, flush=True)
            return 2

    return run
