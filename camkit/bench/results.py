"""The results document of a bench run. ``results.json`` on disk is the source of truth; tables, figures and
the report render it and compute nothing it holds.

Top-level keys (schema ``camkit.bench/2``; documented in docs/results.md):
``schema, created, camkit_version, git, environment, plugins, config, config_hash, dataset, rows, cells,
training, classification, detection, timings, settings, significance, notes, warnings, status``. A document of
an older schema is brought up to date by :func:`migrate` when it is read, the one place that knows old shapes.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from camkit.storage.atomic import atomic_write_json
from camkit.errors import CamkitError

SCHEMA = "camkit.bench/2"
OLDER_SCHEMAS = ("camkit.bench/1",)
RESULTS_FILE = "results.json"

#: The configuration fields that decide a run's numbers, hashed in this order: a field added to BenchConfig
#: must be put here or in UNHASHED_CONFIG (tests/test_results_document.py fails until it is), so that no hash
#: changes by accident and none misses a field that changes the numbers.
HASHED_CONFIG = ("model", "dataset", "train_cams", "test_cams", "preset", "seed", "model_options",
                 "dataset_options", "split_options", "train", "eval_batch_size", "box_threshold", "box_score",
                 "boxes", "faithfulness", "faithfulness_steps", "iou_threshold", "maxboxacc_convention",
                 "fppi_images", "bootstrap", "cam_fuse", "cam_output", "cam_options")
UNHASHED_CONFIG: tuple[str, ...] = ()


def config_hash(config: dict[str, Any]) -> str:
    """The hash of a bench configuration (``BenchConfig.to_dict()``): its :data:`HASHED_CONFIG` fields."""
    from camkit.storage.hashing import stable_hash

    return stable_hash({k: config[k] for k in HASHED_CONFIG if k in config})


def git_info(start: Path | None = None) -> dict[str, Any] | None:
    """The commit and dirtiness of the camkit checkout, when camkit runs from one."""
    root = start or Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=5)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5)
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict[str, Any]:
    """Versions and hardware that shaped the numbers."""
    import numpy
    import torch

    env: dict[str, Any] = {
        "python": sys.version.split()[0], "platform": platform.platform(), "torch": torch.__version__,
        "numpy": numpy.__version__, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        env["device"] = torch.cuda.get_device_name(0)
        env["cuda_devices"] = torch.cuda.device_count()
    try:
        import timm

        env["timm"] = timm.__version__
    except ImportError:
        pass
    return env


def plugin_versions() -> list[dict[str, Any]]:
    """Name, version and status of each loaded plugin."""
    from camkit.registry.host import get_host

    return [{"name": i.name, "version": i.version, "distribution": i.distribution, "ok": i.ok}
            for i in get_host().plugins.values()]


def new_results(config: dict[str, Any]) -> dict[str, Any]:
    """An empty results document for ``config`` with the run's provenance filled in."""
    from camkit import __version__

    return {
        "schema": SCHEMA, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "camkit_version": __version__, "git": git_info(), "environment": environment(),
        "plugins": plugin_versions(), "config": config, "config_hash": config_hash(config),
        "dataset": {}, "rows": {}, "cells": {}, "training": {}, "classification": {}, "detection": {},
        "timings": {}, "settings": {}, "significance": None, "notes": [], "warnings": [], "status": "running",
    }


def save_results(run_dir: str | os.PathLike, results: dict[str, Any]) -> Path:
    """Write ``results.json`` atomically."""
    return atomic_write_json(Path(run_dir) / RESULTS_FILE, results)


class DamagedResults(CamkitError):
    """A results.json that cannot be read as a bench's results (truncated, empty, binary, hand-edited)."""

    def __init__(self, path: Path, why: str) -> None:
        self.path, self.why = path, why
        super().__init__(f"{path} {why}: the file is damaged. Move it aside (mv {path} {path}.bad) and re-run "
                         "`camkit bench` with the same --out (it also does so itself): the finished cells are kept and "
                         "results.json is assembled again from them")


def load_results(path: str | os.PathLike) -> dict[str, Any]:
    """Read a run's results from its directory or its ``results.json``, checking the schema and the shape of the
    parts the leaderboard reads; a damaged file raises :class:`DamagedResults` naming it and what to do."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.is_file():
        raise CamkitError(f"{path}: no such results file; pass a run directory written by `camkit bench`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _damaged(path, f"cannot be read as JSON ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, dict):
        raise _damaged(path, f"holds a JSON {type(data).__name__}, not a bench's results object")
    if "schema" not in data:
        raise _damaged(path, "has no schema field")
    if data.get("schema") in OLDER_SCHEMAS:
        data = migrate(data)
    if data.get("schema") != SCHEMA:
        raise CamkitError(f"{path}: schema {data.get('schema')!r} is not {SCHEMA!r}; this file was not written by "
                          "this camkit version's bench")
    for key in ("config", "detection", "classification"):
        if key in data and not isinstance(data[key], dict):
            raise _damaged(path, f"its {key!r} is a {type(data[key]).__name__}, not an object")
    if not isinstance(data.get("config"), dict):
        raise _damaged(path, "has no config object")
    for row, cells in data.get("detection", {}).items():
        if not isinstance(cells, dict) or not all(isinstance(c, dict) for c in cells.values()):
            raise _damaged(path, f"its detection row {row!r} is not an object of test-cam objects")
    return data


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """A ``camkit.bench/1`` document as ``camkit.bench/2`` (a new dict; the numbers are untouched):

    - ``config_hash`` recomputed by the explicit field list (:data:`HASHED_CONFIG`);
    - ``rows`` filled in for benches from before mixed models (every row a train-cam of the one model);
    - each pairing's ``vs_baseline`` dropped: significance is one top-level ``significance`` object, which the
      next bench over the folder, or the leaderboard, computes;
    - ``warnings`` split into the run's ``notes`` and the rows' warnings; ``cells`` lists the scored rows;
    - ``migrated_from`` names the old schema.
    """
    import copy

    if data.get("schema") == SCHEMA:
        return data
    out = copy.deepcopy(data)
    config = out.get("config") if isinstance(out.get("config"), dict) else {}
    out["migrated_from"] = out.get("schema")  # its scored rows become cells when a bench resumes it
    out["schema"] = SCHEMA
    out["config_hash"] = config_hash(config)
    detection = out.get("detection") if isinstance(out.get("detection"), dict) else {}
    if not out.get("rows"):
        out["rows"] = {label: {"model": config.get("model"), "train_cam": label} for label in detection}
    for cells in detection.values():
        for entry in (cells.values() if isinstance(cells, dict) else ()):
            if isinstance(entry, dict):
                entry.pop("vs_baseline", None)
    warnings = list(out.get("warnings") or [])
    out["notes"] = [w for w in warnings if not w.startswith(("train-cam '", "row '"))]
    out["cells"] = {label: {"status": "complete"} for label in detection
                    if label in (out.get("classification") or {})}
    out.setdefault("settings", {})
    out.setdefault("significance", None)
    return out


def _damaged(path: Path, why: str) -> DamagedResults:
    return DamagedResults(path, why)
