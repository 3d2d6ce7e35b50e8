"""The one way the harness writes a file: atomically, durably, with the umask's permissions.

A writer fills a temporary file beside the target (``.<name>.<host>.<pid>.<token>.tmp``), flushes
and fsyncs it, then renames it over the target and fsyncs the folder: readers see the old file or
the whole new one, never a part, also after a crash or a power cut. The temporary file is created
with mode 0666 minus the umask (not mkstemp's 0600), so a group-readable cluster file system stays
group-readable. A full disk, a quota or a read-only folder is one ``BenchmarkError`` naming the
path; the temporary file is removed. ``remove_stale_temporaries`` cleans up after a killed writer.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from benchmark.core.errors import BenchmarkError

STALE_SECONDS = 24 * 3600  # a temporary file of another host counts as abandoned after this long
_HOST = socket.gethostname().replace(".", "-")


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{_HOST}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def os_error_message(path: Path, error: OSError) -> str:
    """One line for an OSError met while writing ``path`` (or the file the error names)."""
    path = error.filename or path
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{path}: no space left on device (or quota exceeded); nothing was written"
    return f"{path}: cannot write ({error.strerror or error})"


@contextmanager
def write_errors(path: Path) -> Iterator[None]:
    """Turn an OSError inside the block into one ``BenchmarkError`` naming ``path``."""
    try:
        yield
    except OSError as error:
        raise BenchmarkError(os_error_message(path, error)) from None


def staging_folder(target: Path) -> Path:
    """An empty temporary folder beside ``target`` to build it in (then renamed over it), with
    the umask's permissions rather than mkdtemp's 0700."""
    with write_errors(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = _temporary(target)
        staging.mkdir(0o777)  # minus the umask
    return staging


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    except OSError:  # some file systems cannot fsync a folder; the rename is still atomic
        pass
    finally:
        os.close(descriptor)


def write_atomic(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Create or replace ``path`` with what ``write(binary_file)`` writes, all or nothing."""
    path = Path(path)
    temporary = _temporary(path)
    with write_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with os.fdopen(descriptor, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        _fsync_folder(path.parent)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    write_atomic(path, lambda handle: handle.write(data))


def write_json_atomic(data: Any, path: Path) -> None:
    """Indented JSON; NaN and infinity are refused (ValueError) before anything is written."""
    text = json.dumps(data, indent=2, allow_nan=False) + "\n"
    write_bytes_atomic(path, text.encode())


def _abandoned(temporary: Path, now: float) -> bool:
    parts = temporary.name.rsplit(".", 4)  # [".<name>", host, pid, token, "tmp"]
    try:
        age = now - temporary.stat().st_mtime
    except OSError:
        return False
    if len(parts) == 5 and parts[1] == _HOST and parts[2].isdigit():
        try:
            os.kill(int(parts[2]), 0)
        except ProcessLookupError:
            return True  # its writer is gone
        except PermissionError:
            return False  # alive, another user's
        return age > STALE_SECONDS  # alive (or a reused pid): only when very old
    return age > STALE_SECONDS


def remove_stale_temporaries(folder: Path) -> int:
    """Delete temporary files left in ``folder`` (recursively) by writers that were killed; how many."""
    if not folder.is_dir():
        return 0
    now, removed = time.time(), 0
    for temporary in folder.rglob(".*.tmp"):
        if temporary.is_file() and _abandoned(temporary, now):
            temporary.unlink(missing_ok=True)
            removed += 1
    return removed
