"""The preprocessing cache ``camkit prepare DATASET ROOT`` writes and dataset plugins memory-map.

Real mammograms are large (VinDr 3,500x2,800, CBIS-DDSM up to 7,000x5,000 16-bit): decoding, cropping and
resizing each one every epoch would cost more than the model. The cache stores the expensive half of the one
pipeline (:func:`camkit.data.imaging.prepare`) once per image and settings.

Layout under the cache folder (one sub-folder per settings hash, so several sizes can coexist)::

    <cache>/<settings key>/settings.json              the Settings and the dataset root
    <cache>/<settings key>/arrays/<image>.npy         uint16 (H, W), the resized [0, 1] image x 65535
    <cache>/<settings key>/arrays/<image>.masks.npy   (datasets with lesion masks) (N, H, ceil(W/8)) packed bits
    <cache>/<settings key>/arrays/<image>.json        sidecar: source files' keys, BoxTransform, (mean, std),
                                                      and the lesion boxes (stored image's pixels) if any
    <cache>/<settings key>/manifest.json              every valid entry + every image prepare skipped, and why

An entry is valid when its sidecar exists, names the same source files (relative path, size, mtime: the image
and, for datasets with masks, every mask or contour file) and its arrays load with the expected shapes. Arrays
are written before the sidecar, each through a temp file and ``os.replace``, so a killed run leaves temp files
(ignored, then removed) and never a half-written entry. Re-running resumes.

A dataset plugin gives :func:`prepare` its records (objects with ``image_id``, ``sources()`` -> relative paths
of every file the sample is made from, ``where()`` -> the CSV row or file for messages) and a picklable
``prepare_fn(root, record, settings) -> (image, transform, lesions or None)`` (lesions: a
:class:`camkit.data.masks.Lesions`, the boxes in the stored image's pixels and one mask per box in the model
frame, for datasets whose boxes come from masks).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np
import torch

from camkit.errors import CamkitError, DataError
from camkit.storage.atomic import atomic_write, atomic_write_json

MANIFEST = "manifest.json"
PIPELINE_VERSION = 1
UINT16_MAX = 65535


class CacheError(DataError):
    """A cache that does not match the dataset (missing entries, stale sources, other settings)."""


@dataclass(frozen=True)
class Settings:
    """The preprocessing options; their hash keys the cache (change one and the cache is rebuilt)."""

    size: tuple[int, int] = (2944, 1920)
    crop: bool = True          # crop to the breast (grown to the model's aspect ratio)
    flip: bool = True          # orient every breast to face right (by laterality, or from the pixels)
    voi: bool = True           # apply the DICOM VOI LUT / first window
    threshold: float = 0.1     # breast mask threshold on the [0, 1] image
    margin: float = 0.02       # crop margin, fraction of the longer side

    def __post_init__(self) -> None:
        size = tuple(int(v) for v in self.size)
        if len(size) != 2 or min(size) < 8:
            raise ValueError(f"size must be (height, width) with both >= 8, got {self.size!r}")
        object.__setattr__(self, "size", size)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "size": list(self.size), "version": PIPELINE_VERSION}

    def key(self) -> str:
        """A short stable hash of the settings and the pipeline version."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


class CacheRecord(Protocol):
    """What the cache needs of a dataset's image record."""

    image_id: str

    def sources(self) -> tuple[str, ...]: ...

    def where(self) -> str: ...


PrepareFn = Callable[[Path, Any, Settings], tuple[torch.Tensor, Any, Any]]  # -> (image, transform, Lesions | None)


# -- storage format -----------------------------------------------------------------------------------
def to_uint16(image: torch.Tensor) -> np.ndarray:
    """A [0, 1] image as uint16 (H, W), the cache's storage format (quantisation step 1/65535)."""
    return np.rint(image.squeeze(0).numpy() * UINT16_MAX).astype(np.uint16)


def from_uint16(array: np.ndarray) -> torch.Tensor:
    """A cached uint16 (H, W) array (memory-mapped or not) back to a (1, H, W) float32 [0, 1] tensor."""
    out = torch.from_numpy(np.asarray(array, dtype=np.float32))
    return out.mul_(1.0 / UINT16_MAX).unsqueeze(0)


def image_stats(image: torch.Tensor) -> tuple[float, float]:
    """(mean, std) of a [0, 1] image, as :func:`finish` computes them (stored in the cache, so that reading
    an entry needs no pass over the pixels to find them; torch's std alone costs ~30 ms at 2944x1920)."""
    return float(image.mean()), float(image.std())


def finish(image: torch.Tensor) -> torch.Tensor:
    """The per-image z-score the model is fed (GMIC normalises each image by its own mean and std)."""
    from camkit.data.imaging import zscore

    return zscore(image)


def finish_uint16(array: np.ndarray, mean: float, std: float, eps: float = 1e-6) -> torch.Tensor:
    """``finish(from_uint16(array))`` with the stored statistics, in one fused pass (the cached loader)."""
    out = np.empty(array.shape, np.float32)
    scale = 1.0 / (UINT16_MAX * max(float(std), eps))
    np.multiply(array, np.float32(scale), out=out, casting="unsafe")
    out -= np.float32(mean / max(float(std), eps))
    return torch.from_numpy(out).unsqueeze(0)


def pack_masks(masks: Any) -> np.ndarray:
    """(N, H, W) bool masks -> (N, H, ceil(W/8)) uint8, eight pixels a byte (a mask costs H*W/8 bytes)."""
    return np.packbits(np.asarray(torch.as_tensor(masks).bool().numpy(), dtype=bool), axis=-1)


def unpack_masks(packed: np.ndarray, width: int) -> torch.Tensor:
    """The inverse of :func:`pack_masks`: (N, H, W) bool tensor."""
    return torch.from_numpy(np.unpackbits(np.asarray(packed), axis=-1, count=int(width)).astype(bool))


# -- locations and keys ---------------------------------------------------------------------------------
def default_cache_dir(dataset: str) -> Path:
    """``$CAMKIT_CACHE`` or ``~/.cache/camkit``, plus the dataset's name."""
    base = os.environ.get("CAMKIT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "camkit")
    return Path(base) / dataset


def settings_dir(cache: str | Path, settings: Settings) -> Path:
    """The folder holding the entries for ``settings`` under the cache folder ``cache``."""
    return Path(cache) / settings.key()


def source_key(root: Path, relpath: str) -> dict[str, Any]:
    """What identifies a source file: its path under the root, byte size and modification time."""
    st = os.stat(Path(root) / relpath)
    return {"path": relpath, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def sources_key(root: Path, relpaths: Sequence[str]) -> Any:
    """The key of every file a sample is made from (one file: :func:`source_key`'s dict, as VinDr's
    caches have it; several: a list of them). Raises OSError when one is missing."""
    keys = [source_key(root, p) for p in relpaths]
    return keys[0] if len(keys) == 1 else keys


def _current_key(root: Path, record: Any) -> Any:
    try:
        return sources_key(root, record.sources())
    except OSError:
        return None


def _entry_valid(arrays: Path, image_id: str, source: Any, size: tuple[int, int]) -> dict | None:
    try:
        side = json.loads((arrays / f"{image_id}.json").read_text())
        if source is None or side.get("source") != source:
            return None
        arr = np.load(arrays / side["file"], mmap_mode="r")
        if arr.shape != tuple(size) or arr.dtype != np.uint16 or len(side.get("stats", ())) != 2:
            return None
        if side.get("masks"):
            packed = np.load(arrays / side["masks"]["file"], mmap_mode="r")
            if packed.shape[1:] != (size[0], (size[1] + 7) // 8) or packed.shape[0] != side["masks"]["count"]:
                return None
        return side
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _prepare_one(prepare_fn: PrepareFn, root: str, record: Any, settings: Settings,
                 arrays: str) -> dict[str, Any]:
    """Worker: preprocess one image, write its arrays, then its sidecar. Never raises."""
    image_id = record.image_id
    try:
        image, transform, lesions = prepare_fn(Path(root), record, settings)
        array = to_uint16(image)
        name = f"{image_id}.npy"
        side: dict[str, Any] = {"file": name, "source": sources_key(Path(root), record.sources()),
                                "transform": transform.to_dict(), "stats": list(image_stats(image))}
        if lesions is not None:
            packed = pack_masks(lesions.masks)
            mask_name = f"{image_id}.masks.npy"
            atomic_write(Path(arrays) / mask_name, lambda f: np.save(f, packed, allow_pickle=False))
            side["masks"] = {"file": mask_name, "count": int(packed.shape[0])}
            side["boxes"] = np.asarray(lesions.boxes, dtype=np.float64).reshape(-1, 4).tolist()
        atomic_write(Path(arrays) / name, lambda f: np.save(f, array, allow_pickle=False))
        atomic_write_json(Path(arrays) / f"{image_id}.json", side)
        return {"image_id": image_id, "ok": True, "entry": side}
    except CamkitError as exc:
        return {"image_id": image_id, "ok": False, "reason": str(exc)}
    except Exception as exc:  # noqa: BLE001 - one odd file must not end a long run; it is reported
        return {"image_id": image_id, "ok": False, "reason": f"{record.where()}: {type(exc).__name__}: {exc}"}


def _init_worker() -> None:
    # One thread per process: the pool already uses every core.
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


class PrepareProgress(Protocol):
    """Where :func:`prepare` reports its progress: ``start(total)`` before a round of images to write,
    ``step(n)`` after each is done (written or failed), ``end(summary)`` when the round is over.

    The same calls as the evaluation sinks of :mod:`camkit.ui.progress`: the data layer draws nothing itself
    beyond :class:`LineProgress`'s plain lines; a caller with a display (a rich bar) passes its own sink.
    """

    def start(self, total: int) -> None: ...

    def step(self, n: int = 1) -> None: ...

    def end(self, summary: str) -> None: ...


class LineProgress:
    """A :class:`PrepareProgress` writing a plain line about every tenth of a round (logs, pipes, scripts)."""

    def __init__(self, stream: IO[str] | None = None, prefix: str = "prepare"):
        self.stream, self.prefix = stream, prefix
        self.total = self.done = self._next = 0
        self.t0 = time.monotonic()

    def start(self, total: int) -> None:
        self.total, self.done, self._next, self.t0 = total, 0, 0, time.monotonic()

    def step(self, n: int = 1) -> None:
        self.done += n
        if self.done >= self._next or self.done == self.total:
            rate = self.done / max(time.monotonic() - self.t0, 1e-9)
            self._write(f"{self.done}/{self.total} images ({rate:.1f} img/s)")
            self._next = self.done + max(1, self.total // 10)

    def end(self, summary: str) -> None:
        """Nothing to add: the round's last line already reads N/N, and the caller prints what was written and
        skipped."""

    def _write(self, text: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(f"{self.prefix}: {text}\n")
        stream.flush()


def _progress_sink(progress: PrepareProgress | bool | None) -> PrepareProgress | None:
    """True: plain lines on stderr; False or None: silent; anything else is the caller's sink."""
    if progress is True:
        return LineProgress()
    return progress or None


@dataclass(frozen=True)
class _Job:
    """What every image of one :func:`prepare` call is prepared with."""

    root: Path
    settings: Settings
    prepare_fn: PrepareFn
    arrays: Path
    workers: int

    def task(self, record: Any) -> tuple:
        return (self.prepare_fn, str(self.root), record, self.settings, str(self.arrays))


def _run(tasks: list[tuple], workers: int, progress: PrepareProgress | None) -> Iterable[dict[str, Any]]:
    step = progress.step if progress is not None else lambda n=1: None
    if workers <= 1 or len(tasks) <= 1:
        for t in tasks:
            yield _prepare_one(*t)
            step()
        return
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_worker)
    try:
        futures = [pool.submit(_prepare_one, *t) for t in tasks]
        for fut in as_completed(futures):
            yield fut.result()
            step()
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


def prepare(root: str | Path, records_for: Callable[[set[str]], list[Any]], settings: Settings,
            prepare_fn: PrepareFn, cache: str | Path, workers: int | None = None, skip_bad: bool = False,
            progress: PrepareProgress | bool | None = True) -> PrepareReport:
    """Fill the cache for the images ``records_for(bad_ids)`` selects; returns what was written/reused.

    ``records_for`` is called again with the ids that failed, so a balanced selection can draw
    replacements (which are then prepared too). ``prepare_fn`` (a module-level function, so worker processes
    can run it) turns one record into ``(image, transform, masks or None)``. A failure raises
    :class:`CacheError` naming every failed file unless ``skip_bad``, in which case it is recorded in the
    manifest and in the report. Work already done is kept either way; the next call resumes. ``progress``: a
    :class:`PrepareProgress` (a caller's display), True for :class:`LineProgress` on stderr, False for none.
    """
    root = Path(root)
    directory, manifest = _open_settings_dir(root, settings, cache)
    job = _Job(root, settings, prepare_fn, directory / "arrays", workers or os.cpu_count() or 1)
    entries: dict[str, Any] = {k: v for k, v in manifest.get("entries", {}).items()
                               if (job.arrays / v["file"]).exists()}
    bad: dict[str, dict[str, str]] = {}
    report = PrepareReport(directory)
    t0 = time.monotonic()
    seen: set[str] = set()
    while True:
        records = records_for(set(bad))
        todo = _not_cached(job, records, seen | set(bad), entries, report)
        seen |= {r.image_id for r in records}
        if not todo:
            break
        failed = _write_round(job, todo, entries, report, _progress_sink(progress))
        by_id = {r.image_id: r for r in records}
        for f in failed:
            where = _main_path(root, by_id[f["image_id"]])
            bad[f["image_id"]] = {"path": where, "reason": f["reason"]}
            report.skipped.append((where, f["reason"]))
        if failed and not skip_bad:
            _write_manifest(directory, settings, root, entries, {})
            raise _failed_error(failed)
    skipped = {**{k: v for k, v in manifest.get("skipped", {}).items() if k not in entries}, **bad}
    _write_manifest(directory, settings, root, entries, skipped)
    report.seconds = time.monotonic() - t0
    return report


def _open_settings_dir(root: Path, settings: Settings, cache: str | Path) -> tuple[Path, dict[str, Any]]:
    """The settings folder, created, with a killed run's temp files removed and its manifest read; a folder
    holding another dataset's images is a CacheError."""
    directory = settings_dir(cache, settings)
    arrays = directory / "arrays"
    arrays.mkdir(parents=True, exist_ok=True)
    for stale in arrays.glob(".*.tmp"):  # temp files of a killed run (one prepare per cache at a time)
        stale.unlink(missing_ok=True)
    manifest = read_manifest(directory)
    other = manifest.get("root")
    if other and other != str(root.resolve()) and manifest.get("entries"):
        raise CacheError(f"{directory} holds the images of {other}, not of {root.resolve()}: give each dataset its "
                         "own --out (the default is one folder per dataset), or delete that folder to rebuild it.")
    atomic_write_json(directory / "settings.json", {**settings.to_dict(), "root": str(root.resolve())})
    return directory, manifest


def _not_cached(job: _Job, records: list[Any], done: set[str], entries: dict[str, Any],
                report: PrepareReport) -> list[tuple]:
    """The tasks of the records not yet handled (not in ``done``) without a valid entry; those with one are
    added to ``entries`` and counted as reused."""
    todo = []
    for r in {r.image_id: r for r in records}.values():
        if r.image_id in done:
            continue
        side = _entry_valid(job.arrays, r.image_id, _current_key(job.root, r), job.settings.size)
        if side is not None:
            entries[r.image_id] = side
            report.reused += 1
        else:
            todo.append(job.task(r))
    return todo


def _write_round(job: _Job, todo: list[tuple], entries: dict[str, Any], report: PrepareReport,
                 progress: PrepareProgress | None) -> list[dict[str, Any]]:
    """Prepare ``todo`` (in ``job.workers`` processes), adding what was written to ``entries``; the failures."""
    failed: list[dict[str, Any]] = []
    if progress is not None:
        progress.start(len(todo))
    try:
        for result in _run(todo, job.workers, progress):
            if result["ok"]:
                entries[result["image_id"]] = result["entry"]
                report.written += 1
            else:
                failed.append(result)
    finally:
        if progress is not None:
            progress.end(f"{len(todo) - len(failed)} of {len(todo)} images written")
    return failed


def _failed_error(failed: list[dict[str, Any]]) -> CacheError:
    shown = "\n  ".join(f["reason"] for f in failed[:5])
    more = f"\n  ... and {len(failed) - 5} more" if len(failed) > 5 else ""
    return CacheError(f"{len(failed)} image(s) could not be prepared:\n  {shown}{more}\nFix them, or pass "
                      "--skip-bad (skip_bad=True) to record them and go on; prepared images are kept.")


def _main_path(root: Path, record: Any) -> str:
    sources = record.sources()
    return str(root / sources[0]) if sources else record.where()


def _write_manifest(directory: Path, settings: Settings, root: Path, entries: dict, skipped: dict) -> None:
    atomic_write_json(directory / MANIFEST, {"settings": settings.to_dict(), "root": str(root.resolve()),
                                             "entries": entries, "skipped": skipped})


# -- reading ------------------------------------------------------------------------------------------
class CacheReader:
    """A dataset's view of one settings folder: the manifest's entries, checked against the records the
    dataset selected, and each entry's arrays memory-mapped.

    ``prepare_command``: the command line that fills this cache, quoted in every message that asks for it.
    """

    def __init__(self, directory: Path, prepare_command: str):
        self.directory = Path(directory)
        self.command = prepare_command
        manifest = read_manifest(self.directory)
        if not manifest.get("entries") and not manifest.get("skipped"):
            raise CacheError(f"no prepared images in {self.directory}: run `{prepare_command}` first "
                             "(or decode on the fly: cache=None, --dataset-opt cache=null).")
        self.entries: dict[str, Any] = manifest.get("entries", {})
        self.prepare_skipped: dict[str, Any] = manifest.get("skipped", {})

    def valid(self, skipped: list[tuple[str, str]]) -> Callable[[Any], bool]:
        """A ``valid(record)`` for selections under ``skip_bad``: False for an image prepare skipped (listed in
        ``skipped`` once, with prepare's reason)."""
        reported: set[str] = set()

        def valid(r: Any) -> bool:
            bad = self.prepare_skipped.get(r.image_id)
            if bad and r.image_id not in reported:
                reported.add(r.image_id)
                skipped.append((bad.get("path", r.where()), bad.get("reason", "skipped by prepare")))
            return bad is None
        return valid

    def bind(self, root: Path, records: Sequence[Any], split: str) -> None:
        """Check every selected record has a current entry; a missing or stale one is a CacheError saying
        which command refreshes it."""
        for r in records:
            entry = self.entries.get(r.image_id)
            if entry is None:
                bad = self.prepare_skipped.get(r.image_id)
                if bad:
                    raise CacheError(f"{bad.get('path')} was skipped by camkit prepare ({bad.get('reason')}); "
                                     "pass skip_bad=True to leave it out.")
                raise CacheError(f"{_main_path(root, r)} ({split}) is not in the cache {self.directory}: run "
                                 f"`{self.command}` (the same options as this dataset; it resumes).")
            if entry.get("source") != _current_key(root, r):
                extra = " (it or a file its sample is made from)" if len(r.sources()) > 1 else ""
                raise CacheError(f"{_main_path(root, r)} changed or vanished since it was cached in {self.directory}"
                                 f"{extra}: run `{self.command}` again to refresh it.")

    def array(self, image_id: str) -> np.ndarray:
        """The memory-mapped uint16 (H, W) array of an entry."""
        return np.load(self.directory / "arrays" / self.entries[image_id]["file"], mmap_mode="r")

    def sample(self, image_id: str) -> tuple[torch.Tensor, Any, Any]:
        """``(z-scored image (1, H, W), BoxTransform, Lesions or None)`` of an entry."""
        from camkit.data.masks import Lesions
        from camkit.data.sample import BoxTransform

        entry = self.entries[image_id]
        array = self.array(image_id)
        image = finish_uint16(array, *entry["stats"])
        lesions = None
        if entry.get("masks"):
            packed = np.load(self.directory / "arrays" / entry["masks"]["file"], mmap_mode="r")
            lesions = Lesions(np.asarray(entry["boxes"], dtype=np.float64).reshape(-1, 4),
                              unpack_masks(packed, array.shape[1]))
        return image, BoxTransform.from_dict(entry["transform"]), lesions

    def raw(self, image_id: str) -> tuple[torch.Tensor, Any]:
        """``(image (1, H, W) in [0, 1], BoxTransform)`` of an entry, before the z-score."""
        from camkit.data.sample import BoxTransform

        return from_uint16(self.array(image_id)), BoxTransform.from_dict(self.entries[image_id]["transform"])
