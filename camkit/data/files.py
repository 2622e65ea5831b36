"""What is wrong with a path that should be an image file, said precisely.

``Path.is_file()`` is False for a missing file, a folder, a FIFO, a socket, a device and a symlink loop alike,
so every one of them used to be reported as "does not exist", which sends the user looking in the wrong place.
:func:`file_problem` tells them apart without opening anything (opening a FIFO would block until a writer
comes, which is why readers must ask here first).
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

#: how a non-regular file's kind is worded, by its ``stat`` test
_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"))


def file_problem(path: str | Path) -> str | None:
    """Why ``path`` is not a regular file one can read, as the end of a sentence naming it, or None.

    ``"does not exist"``, ``"is a broken symlink (to 'x', which does not exist)"``, ``"is a symlink loop"``,
    ``"is a folder"``, ``"is not a regular file (a FIFO)"`` (or a socket, a device), ``"cannot be opened
    (Permission denied)"``.

    Example:
        >>> file_problem("/")
        'is a folder'
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            return f"is a broken symlink (to {os.readlink(path)!r}, which does not exist)"
        return "does not exist"
    except NotADirectoryError:
        return "does not exist (a folder on its path is a file)"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symlink loop"
        return f"cannot be opened ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a folder"
    kind = next((name for test, name in _KINDS if test(mode)), "an unknown kind of file")
    return f"is not a regular file ({kind})"
