"""A full disk or a folder the user may not write is one line naming the file, the cause and what to do (issue 29).

Nothing fills a disk here: the failing system call is replaced (os.write through the file object, os.replace,
os.open), which is also how a permission error is made, because the tests run as root, where a read-only folder
does not stop writes (the chmod variant runs only as another user).
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from camkit.cli import main
from camkit.storage import atomic
from camkit.storage.atomic import WriteError, atomic_write, atomic_write_json, atomic_write_text

RESUMES = "re-running the same command then resumes where it stopped"


def full(*_: object, **__: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def denied(*_: object, **__: object) -> None:
    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))


def mount_of(path: Path) -> str:
    folder = path.absolute()
    while not os.path.ismount(folder):
        folder = folder.parent
    return str(folder)


@pytest.mark.parametrize("where", ["write", "replace", "open"])
def test_a_full_disk_is_one_line_and_keeps_the_old_file(tmp_path, monkeypatch, where):
    path = tmp_path / "results.json"
    path.write_text("old")
    if where == "write":  # the bytes themselves: the writer's f.write fails as os.write would
        writer = lambda f: full()  # noqa: E731
    else:
        writer = lambda f: f.write(b"new")  # noqa: E731
        monkeypatch.setattr(atomic.os, where, full)
    with pytest.raises(WriteError) as exc:
        atomic_write(path, writer)
    assert str(exc.value) == (f"cannot write {path}: the disk is full: free space on {mount_of(tmp_path)}; "
                              f"{RESUMES}")
    assert exc.value.errno == errno.ENOSPC and isinstance(exc.value, OSError)
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_permission_denied_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic.os, "open", denied)  # as root a read-only folder stops nothing: make the call fail
    path = tmp_path / "models" / "last.pt"
    with pytest.raises(WriteError) as exc:
        atomic_write_text(path, "x")
    assert str(exc.value) == (f"cannot write {path}: permission denied: choose a folder you can write to; "
                              f"{RESUMES}")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder; the monkeypatched test covers it")
def test_a_read_only_folder_is_one_line(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(WriteError, match="permission denied: choose a folder you can write to"):
            atomic_write_json(folder / "x.json", {})
    finally:
        folder.chmod(0o700)


def test_other_failures_stay_what_they_are(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic.os, "replace", lambda *a: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError) as exc:
        atomic_write_text(tmp_path / "x", "x")
    assert not isinstance(exc.value, WriteError) and exc.value.errno == errno.EIO


@pytest.mark.parametrize("fail, cause", [(full, "the disk is full: free space on {mount}"),
                                         (denied, "permission denied: choose a folder you can write to")])
def test_the_cli_prints_it_as_one_line(tmp_path, monkeypatch, fail, cause):
    monkeypatch.setattr(atomic.os, "replace", fail)
    out = tmp_path / "synth"
    res = CliRunner().invoke(main, ["synth", str(out), "--format", "folder", "--n", "4", "--size", "64", "40"])
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 1 and len(lines) == 1, res.output
    assert lines[0].startswith(f"Error: cannot write {out}"), lines[0]
    assert lines[0].endswith(f": {cause.format(mount=mount_of(tmp_path))}; {RESUMES}"), lines[0]
