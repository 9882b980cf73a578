"""Opening input files safely: regular files only.

A FIFO named as input would block the scan until something writes to it, and a device such as
``/dev/zero`` would be read forever, so both are refused with a one-line error before any read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO

from okeguard.errors import InputError


def open_regular_file(path: Path | str, *, what: str = "file") -> IO[bytes]:
    """Open ``path`` for reading in binary, refusing anything but a regular file.

    It is opened without blocking first, so a FIFO is refused at once rather than waited on.
    Errors name the path: missing, a directory, unreadable, or not a regular file (``what`` says
    what was expected, e.g. ``snapshot file``).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file or directory") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise InputError(f"{path}: is a directory, expected a {what}")
        raise InputError(f"{path}: not a regular file (a pipe or a device), expected a {what}")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def refuse_special_files(*paths: str | None) -> None:
    """Raise :class:`InputError` for a path that exists but is neither a regular file nor a
    directory (a FIFO, a device), before a reader that does not check waits on it or reads it
    forever. Missing paths are left to their readers, which name them."""
    for path in paths:
        if path is not None and os.path.exists(path) and not os.path.isdir(path):
            open_regular_file(path).close()
