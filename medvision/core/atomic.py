"""Atomic file writes: write to a temporary file beside the target, then rename over it.

A crash mid-write leaves the previous file intact and no half-written file behind. A write the machine refuses
(disk full, no permission, read-only or missing folder) is a :class:`~medvision.core.errors.FileWriteError` naming
the file, which the CLI reports in one line.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from medvision.core.errors import FileWriteError

#: OS errors that the user can fix (space, permissions, the path), as opposed to bugs.
USER_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT,
                     errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG}


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on failure it is removed.

    Raises:
        FileWriteError: the machine refused the write (the previous ``path``, if any, is intact).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno not in USER_WRITE_ERRNOS or isinstance(exc, FileWriteError):
            raise
        raise FileWriteError(f"cannot write {path} ({exc.strerror or exc}); "
                             f"{'the previous file is kept' if path.exists() else 'nothing was written'}") from exc
    finally:
        with contextlib.suppress(OSError):  # a folder that never existed has no temporary file to remove
            tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    """JSON with one-space indent; numpy/torch scalars are written as floats."""
    return write_text_atomic(path, json.dumps(obj, indent=1, default=float))
