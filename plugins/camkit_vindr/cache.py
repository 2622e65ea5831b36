"""The preprocessing cache ``camkit prepare vindr`` writes and the dataset memory-maps.

Layout under the cache folder (one sub-folder per settings hash, so several sizes can coexist)::

    <cache>/<settings key>/settings.json          the Settings and the dataset root
    <cache>/<settings key>/arrays/<image>.npy     uint16 (H, W), the resized [0, 1] image x 65535
    <cache>/<settings key>/arrays/<image>.json    sidecar: source file key, BoxTransform, (mean, std) (last)
    <cache>/<settings key>/manifest.json          every valid entry + every image prepare skipped, and why

An entry is valid when its sidecar exists, names the same source file (relative path, size, mtime) and its
array loads with the expected shape; everything is written through a temp file and ``os.replace``, so a
killed run leaves temp files (ignored, then removed) and never a half-written entry. Re-running resumes.
"""
from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from camkit.storage.atomic import atomic_write, atomic_write_json
from camkit.errors import CamkitError, DataError

from .annotations import ImageRecord
from .preprocess import Settings

MANIFEST = "manifest.json"


class CacheError(DataError):
    """A cache that does not match the dataset (missing entries, stale sources, other settings)."""


def default_cache_dir() -> Path:
    """``$CAMKIT_CACHE`` or ``~/.cache/camkit``, plus ``vindr``."""
    base = os.environ.get("CAMKIT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "camkit")
    return Path(base) / "vindr"


def settings_dir(cache: str | Path, settings: Settings) -> Path:
    """The folder holding the entries for ``settings`` under the cache folder ``cache``."""
    return Path(cache) / settings.key()


def source_key(root: Path, relpath: str) -> dict[str, Any]:
    """What identifies a source file: its path under the root, byte size and modification time."""
    st = os.stat(root / relpath)
    return {"path": relpath, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _entry_valid(arrays: Path, image_id: str, source: dict[str, Any], size: tuple[int, int]) -> dict | None:
    try:
        side = json.loads((arrays / f"{image_id}.json").read_text())
        if side.get("source") != source:
            return None
        arr = np.load(arrays / side["file"], mmap_mode="r")
        if arr.shape != tuple(size) or arr.dtype != np.uint16 or len(side.get("stats", ())) != 2:
            return None
        return side
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _prepare_one(root: str, relpath: str, image_id: str, laterality: str, expected: tuple[int, int],
                 where: str, settings: dict[str, Any], arrays: str) -> dict[str, Any]:
    """Worker: preprocess one image and write its array, then its sidecar. Never raises."""
    from .preprocess import image_stats, prepare_image, to_uint16

    try:
        s = Settings(**{k: v for k, v in settings.items() if k != "version"})
        image, transform = prepare_image(Path(root) / relpath, laterality, s, expected, where)
        array = to_uint16(image)
        name = f"{image_id}.npy"
        atomic_write(Path(arrays) / name, lambda f: np.save(f, array, allow_pickle=False))
        side = {"file": name, "source": source_key(Path(root), relpath), "transform": transform.to_dict(),
                "stats": list(image_stats(image))}
        atomic_write_json(Path(arrays) / f"{image_id}.json", side)
        return {"image_id": image_id, "ok": True, "entry": side}
    except CamkitError as exc:
        return {"image_id": image_id, "ok": False, "reason": str(exc)}
    except Exception as exc:  # noqa: BLE001 - one odd file must not end a long run; it is reported
        return {"image_id": image_id, "ok": False, "reason": f"{Path(root) / relpath}: {type(exc).__name__}: {exc}"}


def _init_worker() -> None:
    # One thread per process: the pool already uses every core.
    import torch

    torch.set_num_threads(1)


@dataclass
class PrepareReport:
    """What one ``prepare`` call did."""

    cache_dir: Path
    written: int = 0
    reused: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return self.written + self.reused


class _Progress:
    """A rich bar on a terminal, a plain line every ~10% otherwise."""

    def __init__(self, total: int, stream: IO[str] | None, enabled: bool):
        self.total, self.done, self.enabled = total, 0, enabled and total > 0
        self.stream = stream or sys.stderr
        self.rich = None
        self.t0 = time.monotonic()
        self._next = 0
        if self.enabled and getattr(self.stream, "isatty", lambda: False)():
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self.rich = Progress(TextColumn("prepare"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 TimeRemainingColumn(), console=Console(file=self.stream))
            self.rich.start()
            self.task = self.rich.add_task("prepare", total=total)

    def step(self) -> None:
        self.done += 1
        if not self.enabled:
            return
        if self.rich is not None:
            self.rich.update(self.task, completed=self.done)
        elif self.done >= self._next or self.done == self.total:
            rate = self.done / max(time.monotonic() - self.t0, 1e-9)
            self.stream.write(f"prepare: {self.done}/{self.total} images ({rate:.1f} img/s)\n")
            self.stream.flush()
            self._next = self.done + max(1, self.total // 10)

    def close(self) -> None:
        if self.rich is not None:
            self.rich.stop()


def _run(tasks: list[tuple], workers: int, progress: _Progress) -> Iterable[dict[str, Any]]:
    if workers <= 1 or len(tasks) <= 1:
        for t in tasks:
            yield _prepare_one(*t)
            progress.step()
        return
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_worker)
    try:
        futures = [pool.submit(_prepare_one, *t) for t in tasks]
        for fut in as_completed(futures):
            yield fut.result()
            progress.step()
    finally:  # on Ctrl-C or an error, drop the queued images instead of finishing them all
        pool.shutdown(wait=True, cancel_futures=True)


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of one settings folder (empty entries when there is none yet)."""
    try:
        return json.loads((directory / MANIFEST).read_text())
    except FileNotFoundError:
        return {"entries": {}, "skipped": {}}
    except (OSError, ValueError) as exc:
        raise CacheError(f"{directory / MANIFEST} is unreadable ({exc}); delete it and run camkit prepare again "
                         "(valid arrays are reused).") from None


def prepare(root: str | Path, records_for: Callable[[set[str]], list[ImageRecord]], settings: Settings,
            cache: str | Path | None = None, workers: int | None = None, skip_bad: bool = False,
            stream: IO[str] | None = None, progress: bool = True) -> PrepareReport:
    """Fill the cache for the images ``records_for(bad_ids)`` selects; returns what was written/reused.

    ``records_for`` is called again with the ids that failed, so a balanced selection can draw
    replacements (which are then prepared too). A failure raises :class:`CacheError` naming every failed
    file unless ``skip_bad``, in which case it is recorded in the manifest and in the report.
    Work already done is kept either way; the next call resumes.
    """
    root = Path(root)
    directory = settings_dir(cache or default_cache_dir(), settings)
    arrays = directory / "arrays"
    arrays.mkdir(parents=True, exist_ok=True)
    for stale in arrays.glob(".*.tmp"):  # temp files of a killed run (one prepare per cache at a time)
        stale.unlink(missing_ok=True)
    atomic_write_json(directory / "settings.json", {**settings.to_dict(), "root": str(root.resolve())})
    manifest = read_manifest(directory)
    entries: dict[str, Any] = {k: v for k, v in manifest.get("entries", {}).items() if (arrays / v["file"]).exists()}
    bad: dict[str, dict[str, str]] = {}
    report = PrepareReport(directory)
    t0 = time.monotonic()
    workers = workers or os.cpu_count() or 1
    seen: set[str] = set()
    while True:
        records = records_for(set(bad))
        todo = []
        for r in {r.image_id: r for r in records}.values():
            if r.image_id in seen or r.image_id in bad:
                continue
            seen.add(r.image_id)
            side = _entry_valid(arrays, r.image_id, source_key(root, r.relpath()) if (root / r.relpath()).exists()
                                else {}, settings.size)
            if side is not None:
                entries[r.image_id] = side
                report.reused += 1
            else:
                todo.append((str(root), r.relpath(), r.image_id, r.laterality, (r.height, r.width), r.where(),
                             settings.to_dict(), str(arrays)))
        if not todo:
            break
        bar = _Progress(len(todo), stream, progress)
        failed = []
        try:
            for result in _run(todo, workers, bar):
                if result["ok"]:
                    entries[result["image_id"]] = result["entry"]
                    report.written += 1
                else:
                    failed.append(result)
        finally:
            bar.close()
        for f in failed:
            rec = next(r for r in records if r.image_id == f["image_id"])
            bad[f["image_id"]] = {"path": str(root / rec.relpath()), "reason": f["reason"]}
            report.skipped.append((str(root / rec.relpath()), f["reason"]))
        if failed and not skip_bad:
            _write_manifest(directory, settings, root, entries, {})
            shown = "\n  ".join(f["reason"] for f in failed[:5])
            more = f"\n  ... and {len(failed) - 5} more" if len(failed) > 5 else ""
            raise CacheError(f"{len(failed)} image(s) could not be prepared:\n  {shown}{more}\nFix them, or pass "
                             "--skip-bad (skip_bad=True) to record them and go on; prepared images are kept.")
    skipped = {**{k: v for k, v in manifest.get("skipped", {}).items() if k not in entries}, **bad}
    _write_manifest(directory, settings, root, entries, skipped)
    report.seconds = time.monotonic() - t0
    return report


def _write_manifest(directory: Path, settings: Settings, root: Path, entries: dict, skipped: dict) -> None:
    atomic_write_json(directory / MANIFEST, {"settings": settings.to_dict(), "root": str(root.resolve()),
                                             "entries": entries, "skipped": skipped})
