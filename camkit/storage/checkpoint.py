"""Checkpoints that load without running code: written atomically, read only with ``weights_only=True``.

A camkit checkpoint is a dict of tensors, dicts, lists, tuples, numbers, strings, booleans and None::

    format "camkit-checkpoint", version 1, kind "last" | "best",
    model (state dict), model_config, optimizer, scaler, epoch, epoch_step, step, rng, config,
    config_hash, fingerprint, history, best, camkit_version

``load_checkpoint`` also accepts a plain state dict (e.g. released weights) when given a model.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from camkit.storage.atomic import atomic_write
from camkit.errors import CheckpointError

FORMAT = "camkit-checkpoint"
VERSION = 1


def check_safe(obj: Any, where: str = "checkpoint") -> None:
    """Raise CheckpointError naming the first value that ``torch.load(weights_only=True)`` could not read."""
    import torch

    if obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor, torch.dtype, torch.device)):
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise CheckpointError(f"{where}: key {k!r} is a {type(k).__name__}; use str or int keys")
            check_safe(v, f"{where}[{k!r}]")
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            check_safe(v, f"{where}[{i}]")
        return
    raise CheckpointError(f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}; checkpoints hold only "
                          "tensors, dicts, lists, numbers, strings and None (convert it, e.g. .tolist())")


def save_checkpoint(obj: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``obj`` to ``path`` atomically: a crash mid-write leaves the previous file intact.

    The object is checked first so that every file written is loadable with ``weights_only=True``.
    """
    import torch

    check_safe(obj, str(path))
    buf = io.BytesIO()
    torch.save(obj, buf)  # serialise fully before touching the disk
    return atomic_write(path, lambda f: f.write(buf.getbuffer()))


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """``torch.load(path, weights_only=True)``, with one clear message per way a file can be unusable:
    missing, empty, not a PyTorch file (or cut short), or holding objects whose unpickling would run code."""
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist (check the path or train first)")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {str(path)!r} is empty (0 bytes): an interrupted copy or download? "
                              "Copy it again, or train again")
    with open(path, "rb") as f:
        magic = f.read(4)
    # torch.save writes a zip archive (PK..) or, in its legacy format, a pickle (protocol >= 2 opens with 0x80)
    if not (magic.startswith(b"PK\x03\x04") or magic[:1] == b"\x80"):
        raise _not_a_checkpoint(path)
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses both code (an unsupported GLOBAL) and bytes that are no pickle at all
        if "GLOBAL" not in str(exc):
            raise _not_a_checkpoint(path) from None
        raise CheckpointError(
            f"refusing to load {str(path)!r}: it is not a weights-only file (torch.load(weights_only=True) finds "
            "Python objects that only unpickling could rebuild, and unpickling runs code). camkit loads only tensors, dicts, lists, numbers and strings; re-save it as a "
            "plain state dict (torch.save(model.state_dict(), path)) from a source you trust") from None
    except Exception as exc:  # noqa: BLE001 - torch.load fails in many ways on a file that is not its own
        raise CheckpointError(f"checkpoint {str(path)!r} is damaged or not a PyTorch checkpoint (torch.load: "
                              f"{type(exc).__name__}: {_first_line(exc) or 'unexpected end of file'}); copy it "
                              "again, or train again") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {str(path)!r} holds a {type(obj).__name__}, not a state dict or a camkit "
                              "checkpoint (both are dicts)")
    return obj


def _not_a_checkpoint(path: Path) -> CheckpointError:
    return CheckpointError(f"checkpoint {str(path)!r} is not a PyTorch checkpoint (its bytes are neither a "
                           "torch.save archive nor a pickle): the wrong file, or a damaged one; copy it again, "
                           "or train again")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else ""


def is_camkit_checkpoint(obj: Any) -> bool:
    """True for dicts written by camkit's training loop (as opposed to plain state dicts)."""
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def load_checkpoint(path: str | os.PathLike, model: Any = None, *, strict: bool = True,
                    map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely and, if ``model`` is given, load its weights into it.

    Accepts camkit checkpoints (``best.pt`` / ``last.pt``) and plain state dicts. Returns the checkpoint dict
    (for a plain state dict: ``{"model": state_dict}``). Raises CheckpointError naming the file on unsafe or
    mismatching content.
    """
    return apply_checkpoint(read_checkpoint(path, map_location), model, path, strict=strict)


def apply_checkpoint(obj: dict[str, Any], model: Any = None, path: str | os.PathLike = "checkpoint", *,
                     strict: bool = True) -> dict[str, Any]:
    """:func:`load_checkpoint` for a dict :func:`read_checkpoint` already returned, so that a caller that
    looks inside a file first (at its ``model_config``) reads it once; ``path`` names it in the errors."""
    ckpt = obj if is_camkit_checkpoint(obj) else {"model": obj}
    if is_camkit_checkpoint(obj) and int(obj.get("version", 0)) > VERSION:
        raise CheckpointError(f"checkpoint {str(path)!r} has format version {obj.get('version')}; this camkit "
                              f"reads up to {VERSION} (upgrade camkit)")
    if model is not None:
        state = ckpt["model"]
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise CheckpointError(f"checkpoint {str(path)!r} has no state dict under 'model'")
        try:
            result = model.load_state_dict(state, strict=strict)
        except RuntimeError as exc:
            raise CheckpointError(f"checkpoint {str(path)!r} does not fit {type(model).__name__}: {exc}") from None
        if not strict and (result.missing_keys or result.unexpected_keys):
            ckpt = {**ckpt, "missing_keys": list(result.missing_keys),
                    "unexpected_keys": list(result.unexpected_keys)}
    return ckpt
