"""The VinDr side of the preprocessing cache (:mod:`camkit.data.cache` holds the format and the engine):
its default folder and the per-image preparation ``camkit prepare vindr`` runs."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO

from camkit.data import cache as _cache
from camkit.data.cache import (CacheError, PrepareReport, read_manifest, settings_dir,  # noqa: F401 - re-exported
                               source_key)

from .annotations import ImageRecord
from .preprocess import Settings, prepare_record


def default_cache_dir() -> Path:
    """``$CAMKIT_CACHE`` or ``~/.cache/camkit``, plus ``vindr``."""
    return _cache.default_cache_dir("vindr")


def prepare(root: str | Path, records_for: Callable[[set[str]], list[ImageRecord]], settings: Settings,
            cache: str | Path | None = None, workers: int | None = None, skip_bad: bool = False,
            stream: IO[str] | None = None, progress: _cache.PrepareProgress | bool | None = True) -> PrepareReport:
    """Fill the VinDr cache for the images ``records_for(bad_ids)`` selects (see :func:`camkit.data.cache.prepare`).

    ``progress``: a caller's sink (``camkit prepare vindr`` passes :func:`camkit.ui.progress.prepare_sink`'s),
    True for plain lines on ``stream`` (default stderr), False or None for none."""
    sink = _cache.LineProgress(stream) if progress is True else progress or None
    return _cache.prepare(root, records_for, settings, prepare_record, cache or default_cache_dir(),
                          workers=workers, skip_bad=skip_bad, progress=sink)
