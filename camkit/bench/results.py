"""The results schema of a bench run. ``results.json`` on disk is the source of truth; tables and plots
are renderings of it.

Top-level keys (schema ``camkit.bench/1``; documented in docs/results.md):
``schema, created, camkit_version, git, environment, plugins, config, config_hash, dataset, training,
classification, detection, timings, status``.
"""
from __future__ import annotations

import hashlib
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

SCHEMA = "camkit.bench/1"
RESULTS_FILE = "results.json"


def config_hash(obj: Any) -> str:
    """A short stable hash of a JSON-able configuration (key order does not matter)."""
    blob = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


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
        "dataset": {}, "training": {}, "classification": {}, "detection": {}, "timings": {},
        "status": "running",
    }


def save_results(run_dir: str | os.PathLike, results: dict[str, Any]) -> Path:
    """Write ``results.json`` atomically."""
    return atomic_write_json(Path(run_dir) / RESULTS_FILE, results)


class DamagedResults(CamkitError):
    """A results.json that cannot be read as a bench's results (truncated, empty, binary, hand-edited)."""

    def __init__(self, path: Path, why: str) -> None:
        self.path, self.why = path, why
        super().__init__(f"{path} {why}: the file is damaged. Move it aside (mv {path} {path}.bad) and re-run "
                         "`camkit bench` with the same --out (it also does so itself): the trained models in the "
                         "store are reused, only the scoring runs again")


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
    if data.get("schema") != SCHEMA:
        if "schema" not in data:
            raise _damaged(path, "has no schema field")
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


def _damaged(path: Path, why: str) -> DamagedResults:
    return DamagedResults(path, why)
