"""Loading a model's state dict from a file: weights-only, strict, with the mismatches named.

Files are read by :func:`camkit.storage.checkpoint.read_checkpoint` (weights-only): a file that would need
arbitrary unpickling is refused, never loaded another way. Loading into a model with another class count
keeps every tensor except the class-specific heads the model names, which keep its fresh initialisation and
are reported by name. GMIC and GLAM load released and camkit checkpoints through it.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping

from torch import Tensor, nn

from camkit.errors import CheckpointError

log = logging.getLogger(__name__)

WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")  # camkit / common training checkpoints


def read_state_dict(path: str | os.PathLike, drop: Iterable[str] = ()) -> dict[str, Tensor]:
    """The tensors of a checkpoint file, loaded safely (``weights_only=True``), on the CPU.

    Accepts a plain state dict or a dict wrapping one under ``state_dict``/``model``/``model_state_dict``;
    strips a DDP ``module.`` prefix and drops the keys in ``drop`` (e.g. tensors a released file holds that
    no module uses).
    """
    from camkit.storage.checkpoint import read_checkpoint

    obj = read_checkpoint(path)  # weights-only, with camkit's messages for missing, empty, damaged, unsafe
    if isinstance(obj, Mapping):
        for key in WRAPPER_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj or not all(
            isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
        raise CheckpointError(f"checkpoint {str(path)!r} holds a {type(obj).__name__}, not a state dict "
                              "(a mapping of parameter names to tensors)")
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}
    for key in drop:
        state.pop(key, None)
    return state


def load_state(model: nn.Module, state: Mapping[str, Tensor], class_specific: Iterable[str] = (),
               source: str = "state dict", model_name: str = "model") -> list[str]:
    """Load ``state`` into ``model`` with ``strict=True``; returns the re-initialised class-specific keys.

    A tensor in ``class_specific`` whose shape differs (another class count) keeps the model's own
    initialisation; any other missing, unexpected or mis-shaped tensor raises CheckpointError.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise CheckpointError(f"{source} does not fit this {model_name}: missing {_few(missing)}, unexpected "
                              f"{_few(unexpected)} (was it saved from another preset or model?)")
    heads = set(class_specific)
    merged, reinit = {}, []
    for k, mine in own.items():
        theirs = state[k]
        if theirs.shape == mine.shape:
            merged[k] = theirs
        elif k in heads:
            merged[k] = mine
            reinit.append(k)
        else:
            raise CheckpointError(f"{source}: tensor {k!r} has shape {tuple(theirs.shape)} but this model "
                                  f"expects {tuple(mine.shape)}; use the preset/sizes it was trained with")
    model.load_state_dict(merged, strict=True)
    if reinit:
        log.warning("%s: class count differs; re-initialised %s", source, ", ".join(reinit))
    return reinit


def _few(keys: list[str], n: int = 5) -> str:
    if not keys:
        return "none"
    return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")
