"""Load GMIC weights: the released ``sample_model_{1..5}.p`` state dicts or camkit's own checkpoints, through
:mod:`camkit.storage.state_dict` (weights-only, strict; another class count re-initialises the class heads)."""
from __future__ import annotations

import os

from torch import Tensor, nn

from camkit.storage import state_dict

UNUSED_KEYS = ("shared_rep_filter.weight",)  # in the released files, used by no module


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """A checkpoint's tensors, read weights-only, without the released files' unused ``shared_rep_filter``."""
    return state_dict.read_state_dict(path, drop=UNUSED_KEYS)


def load_into(model: nn.Module, path: str | os.PathLike) -> list[str]:
    """Read ``path`` safely and load it into a GMIC model; returns (and logs) the re-initialised tensors."""
    from .model import CLASS_SPECIFIC_KEYS

    reinit = state_dict.load_state(model, read_state_dict(path), CLASS_SPECIFIC_KEYS,
                                   source=f"checkpoint {str(path)!r}", model_name="GMIC")
    if hasattr(model, "reinitialised"):
        model.reinitialised = reinit
    return reinit
