"""Atomic file writes: a reader sees the old file or the new one, never half of either."""
from __future__ import annotations

import errno
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from camkit.errors import CamkitError


class WriteError(CamkitError, OSError):
    """A file camkit could not write because of the disk or its permissions (full, read-only, not allowed).

    One line naming the file, what is wrong and what to do; still an ``OSError`` (with its ``errno``), so code
    that handles failed writes keeps handling it.
    """

    def __init__(self, message: str, code: int, why: str):
        super().__init__(message)
        self.errno, self.strerror = code, why

    def __str__(self) -> str:  # OSError would print "[Errno 28] ..."
        return str(self.args[0])


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(f)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``.

    The file gets the permissions a plain ``open()`` would give it (the user's umask), not mkstemp's 0600.
    A full disk, a read-only file system or a folder the user may not write raises :class:`WriteError` (one
    line: the file, the cause, what to do); ``path`` keeps its old content, and no temporary file is left.
    """
    path = Path(path)
    tmp = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # os.open with 0o666 applies the user's umask, as a plain open() would (mkstemp would make it 0600)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:  # never created, or the disk's state forbids even this: the first error matters
                pass
            raise
    except OSError as exc:
        error = _write_error(path, exc)
        if error is None:
            raise
        raise error from exc
    return path


# errno -> (what is wrong, what to do) for the failures a user fixes outside camkit
_CAUSES = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
           errno.EACCES: "permission denied", errno.EPERM: "permission denied",
           errno.EROFS: "the file system is read-only"}


def _write_error(path: Path, exc: OSError) -> WriteError | None:
    """The one-line WriteError for ``exc`` while writing ``path``, or None for another kind of failure."""
    cause = _CAUSES.get(exc.errno or 0)
    if cause is None or isinstance(exc, WriteError):
        return None
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        todo = f"free space on {_mount(path)}"
    else:
        todo = "choose a folder you can write to"
    return WriteError(f"cannot write {path}: {cause}: {todo}; re-running the same command then resumes where it "
                      "stopped", exc.errno or 0, cause)


def _mount(path: Path) -> str:
    """The mount point ``path`` is on (its nearest existing folder's)."""
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    while not os.path.ismount(folder) and folder != folder.parent:
        folder = folder.parent
    return str(folder)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically (NaN written as null)."""
    return atomic_write_text(path, json.dumps(_clean(obj), indent=1) + "\n")


def _clean(obj: Any) -> Any:
    # JSON has no NaN/inf; None is the honest spelling of "undefined" in a results file.
    if isinstance(obj, float):
        return obj if obj == obj and abs(obj) != float("inf") else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "tolist"):
        return _clean(obj.tolist())
    if hasattr(obj, "item"):
        return _clean(obj.item())
    return obj
