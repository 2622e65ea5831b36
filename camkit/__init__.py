"""camkit: benchmark class-activation-map methods for weakly supervised mass detection on mammograms.

Importing camkit is cheap: plugins load on first use, and torch-heavy pieces import lazily.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

from camkit.registry.hookspecs import hookimpl

__version__ = "0.1.0"

_LAZY = {
    "list_cams": "camkit.registry.api", "list_models": "camkit.registry.api", "list_datasets": "camkit.registry.api",
    "list_backbones": "camkit.registry.api", "get_cam": "camkit.registry.api", "create_model": "camkit.registry.api",
    "create_dataset": "camkit.registry.api", "create_backbone": "camkit.registry.api",
    "list_detectors": "camkit.registry.api", "create_detector": "camkit.registry.api",
    "cam_maps": "camkit.cams.engine", "CAMMethod": "camkit.cams.base",
}

__all__ = ["__version__", "hookimpl", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'camkit' has no attribute {name!r}")
