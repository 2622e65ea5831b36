"""One writer per folder: a lock file naming the process that holds it.

Two ``camkit bench`` with different seeds on one ``--out`` both exited 0 and only one's results survived; two
trainings of the same model-store entry would overwrite each other's checkpoints. :class:`FolderLock` makes the
second process refuse (a run folder) or wait (a model-store entry, then reuse what the first trained). A lock
whose process has died on this machine (SIGKILL, a crash) is taken over; one held on another machine (a shared
file system) is only reported, since its process cannot be checked from here.
"""
from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from camkit.errors import CamkitError

LOCK_FILE = ".camkit.lock"


class FolderBusy(CamkitError):
    """Another live process holds the folder's lock."""


class FolderLock:
    """An exclusive lock on ``folder`` (``folder/.camkit.lock``, created with O_EXCL), released on exit.

    A lock left by this same process (an error between taking and releasing it) counts as stale: one process
    runs one bench or training at a time.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> with FolderLock(d, "--out"):
        ...     (d / LOCK_FILE).is_file()
        True
        >>> (d / LOCK_FILE).exists()
        False
    """

    def __init__(self, folder: str | os.PathLike, what: str) -> None:
        self.folder, self.what = Path(folder), what
        self.path = self.folder / LOCK_FILE
        self.held = False

    def acquire(self, wait: bool = False, poll: float = 2.0, on_wait: Callable[[str], Any] | None = None) -> None:
        """Take the lock; if a live process holds it, raise :class:`FolderBusy` (``wait``: poll until it is
        free, calling ``on_wait(message)`` once)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        told = False
        while True:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                holder = self._holder()
                if holder is None:  # its process is gone: take it over (a racing taker loses at O_EXCL)
                    self._remove_stale()
                    continue
                message = (f"{self.what} {self.folder} is in use by another camkit process (pid {holder.get('pid')} "
                           f"on {holder.get('host')}, since {holder.get('since')})")
                if not wait:
                    raise FolderBusy(f"{message}; wait for it to finish or choose another folder (if that process "
                                     f"is gone, delete {self.path})") from None
                if not told and on_wait is not None:
                    on_wait(f"{message}: waiting for it")
                    told = True
                time.sleep(poll)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump({"pid": os.getpid(), "host": socket.gethostname(),
                           "since": time.strftime("%Y-%m-%d %H:%M:%S")}, f)
            self.held = True
            return

    def remove_leftovers(self, recursive: bool = False) -> list[Path]:
        """Delete the temporary files (``.NAME.HEX.tmp``, camkit.storage.atomic's) a killed writer left in the
        folder (``recursive``: and below it); only the lock's holder may, since no other writer can be at work.
        Returns what was removed."""
        if not self.held:
            raise RuntimeError("remove_leftovers needs the lock held")
        found = [p for p in (self.folder.rglob(".*.tmp") if recursive else self.folder.glob(".*.tmp")) if p.is_file()]
        for p in found:
            p.unlink(missing_ok=True)
        return found

    def release(self) -> None:
        """Remove the lock file if this object holds it."""
        if self.held:
            self.held = False
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def holder(self) -> dict[str, Any] | None:
        """Who holds the lock now (``pid``, ``host``, ``since``), or None when nobody alive does (no lock, or one
        a dead process of this machine left). A lock of another machine counts as held."""
        return self._holder() if self.path.exists() else None

    def _holder(self) -> dict[str, Any] | None:
        """The lock's holder, or None when it is a dead process of this machine (or an unreadable leftover)."""
        try:
            holder = json.loads(self.path.read_text())
            pid, host = int(holder["pid"]), str(holder["host"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            # a lock being written this instant reads empty: give its writer a moment before calling it stale
            time.sleep(0.2)
            try:
                holder = json.loads(self.path.read_text())
                pid, host = int(holder["pid"]), str(holder["host"])
            except (OSError, ValueError, KeyError, TypeError):
                return None
        if host != socket.gethostname():
            return holder
        return holder if _alive(pid) else None

    def _remove_stale(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


def _alive(pid: int) -> bool:
    if pid == os.getpid():  # left by this process itself: not another writer
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True
