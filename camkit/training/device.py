"""The one place that decides device-dependent settings: which device, autocast, memory layout.

Defaults follow what was measured (docs/performance.md): on CUDA, bf16 autocast and channels-last memory
(convolutions there are far faster in NHWC); on the CPU, float32 and the default layout (channels-last made a
GMIC train step 1.19x slower on a 2-core CPU). Models never choose their own layout; training and evaluation
apply :class:`DeviceSettings` to them.
"""
from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any

from camkit.errors import OptionError

AMP_MODES = ("auto", "off", "bf16", "fp16")
_DEVICE = re.compile(r"^(cpu|cuda|mps)(:\d+)?$")


def resolve_amp(amp: str, device_type: str) -> str:
    """"auto" -> "bf16" on CUDA, "off" elsewhere."""
    return ("bf16" if device_type == "cuda" else "off") if amp == "auto" else amp


def resolve_channels_last(channels_last: bool | None, device_type: str) -> bool:
    """None -> on for CUDA, off elsewhere."""
    return device_type == "cuda" if channels_last is None else bool(channels_last)


def check_device(spec: str | None, option: str = "--device") -> None:
    """Raise OptionError for a device string torch would refuse or that this machine does not have."""
    import torch

    if spec is None:
        return
    if not _DEVICE.match(str(spec)):
        raise OptionError(f"{option} {spec!r} is not a device; use cpu, cuda, cuda:N (N a GPU index) or mps")
    kind, _, index = str(spec).partition(":")
    if kind in ("cpu", "mps") and index not in ("", "0"):
        raise OptionError(f"{option} {spec}: there is one {kind} device; use {option} {kind}")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise OptionError(f"{option} {spec}: this machine has no usable CUDA GPU (torch "
                              f"{torch.__version__}, torch.cuda.is_available() is False); use {option} cpu, "
                              "or install a CUDA build of torch")
        if index and int(index) >= torch.cuda.device_count():
            raise OptionError(f"{option} {spec}: there are {torch.cuda.device_count()} CUDA device(s), "
                              f"numbered 0..{torch.cuda.device_count() - 1}")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise OptionError(f"{option} mps: Apple's Metal backend is not available here; use {option} cpu")


@dataclass(frozen=True)
class DeviceSettings:
    """Where and how a model runs: the device, the autocast mode and the memory layout."""

    device: Any  # torch.device
    amp: str = "off"
    channels_last: bool = False

    @classmethod
    def resolve(cls, device: Any, amp: str = "auto", channels_last: bool | None = None) -> DeviceSettings:
        """Settings for ``device`` (a torch.device) with "auto"/None options filled in, checked."""
        amp = resolve_amp(amp, device.type)
        if amp not in AMP_MODES[1:]:
            raise OptionError(f"amp must be one of {', '.join(AMP_MODES)}, got {amp!r}")
        if amp == "fp16" and device.type != "cuda":
            raise OptionError(f"amp='fp16' needs CUDA; use amp='bf16' or 'off' on {device.type}")
        return cls(device, amp, resolve_channels_last(channels_last, device.type))

    def autocast(self) -> Any:
        """The autocast context of these settings (a no-op context when amp is off)."""
        import torch

        if self.amp == "off":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.amp == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def prepare_model(self, model: Any) -> Any:
        """Move ``model`` to the device, in channels-last layout when that is on; returns it."""
        import torch

        return model.to(self.device, memory_format=torch.channels_last if self.channels_last
                        else torch.preserve_format)

    def prepare_images(self, images: Any) -> Any:
        """Move an image batch to the device (asynchronously from pinned memory) in the chosen layout."""
        import torch

        images = images.to(self.device, non_blocking=True)
        if self.channels_last and images.dim() == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    @property
    def pin_memory(self) -> bool:
        """Whether DataLoaders should pin host memory (only useful when copying to CUDA)."""
        return self.device.type == "cuda"

    def to_dict(self) -> dict[str, Any]:
        return {"device": str(self.device), "amp": self.amp, "channels_last": self.channels_last}
