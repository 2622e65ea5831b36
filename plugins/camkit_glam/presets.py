"""GLAM configurations: every size is a field; ``official`` is the released model, ``cpu`` trains in minutes.

A preset is only a starting point: ``resolve_config("cpu", top_k=0.05)`` overrides single fields, and unknown
field names are refused with the list of valid ones.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from camkit.errors import CamkitError, OptionError, UnknownNameError, did_you_mean


@dataclass
class GLAMConfig:
    """All of GLAM's sizes and training defaults (JSON-able; tuples for shapes)."""

    num_classes: int = 2
    class_names: tuple[str, ...] = ("benign", "malignant")
    mass_class: int | None = None  # index of the "mass" class predict() reports; None = the last class
    input_size: tuple[int, int] = (2944, 1920)  # (H, W), multiples of 16
    # global network: GMIC's pre-activation ResNet-22; maps are read off three stages (fine to coarse)
    global_widths: tuple[int, ...] = (16, 32, 64, 128, 256)
    global_blocks: tuple[int, ...] = (2, 2, 2, 2, 2)
    global_strides: tuple[int, ...] = (1, 2, 2, 2, 2)
    map_stages: tuple[int, int] = (2, 3)  # the two raw stage outputs with a head (the third is the final map)
    top_k: float = 0.03  # fraction of cells averaged into each scale's score (percent_k)
    # the patch search map: weights of the (finest, middle, final) maps
    patch_weights: tuple[float, float, float] = (0.2, 0.6, 0.2)
    num_patches: int = 1
    patch_size: tuple[int, int] = (512, 512)
    # local network: a ResNet-34 trunk with every stage at stride 1 (a map at 1/4 of the patch)
    local_widths: tuple[int, ...] = (64, 128, 256, 512)
    local_blocks: tuple[int, ...] = (3, 4, 6, 3)
    local_in_chans: int = 3  # the grey patch is repeated to this many channels
    local_top_k: float = 0.3  # fraction of patch-map pixels averaged into y_local
    # training-time map that picks the patch: "cam" (GLAM's own multi-scale map) or any registered CAM method
    train_cam: str = "cam"
    train_cam_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    # loss (not released; docs/models.md): BCE on y_global and y_local + beta * mean of the global maps
    local_weight: float = 1.0
    beta: float = 1e-4
    lr: float = 1e-5

    def validate(self) -> GLAMConfig:
        """Check field consistency; raise CamkitError naming the bad field."""
        if self.num_classes < 1 or len(self.class_names) != self.num_classes:
            raise CamkitError(f"glam: class_names {self.class_names} must have num_classes={self.num_classes} "
                              "names")
        if self.mass_class is not None and not 0 <= self.mass_class < self.num_classes:
            raise CamkitError(f"glam: mass_class={self.mass_class} is outside 0..{self.num_classes - 1}")
        if not (len(self.global_widths) == len(self.global_blocks) == len(self.global_strides)):
            raise CamkitError("glam: global_widths, global_blocks and global_strides must have the same length")
        n = len(self.global_widths)
        if len(self.map_stages) != 2 or not 0 <= self.map_stages[0] < self.map_stages[1] < n - 1:
            raise CamkitError(f"glam: map_stages must be two increasing stage indices below the last ({n - 1}), "
                              f"got {self.map_stages}")
        if len(self.local_widths) != len(self.local_blocks):
            raise CamkitError("glam: local_widths and local_blocks must have the same length")
        if not (0.0 < self.top_k <= 1.0 and 0.0 < self.local_top_k <= 1.0):
            raise CamkitError("glam: top_k and local_top_k must be in (0, 1]")
        if len(self.patch_weights) != 3:
            raise CamkitError(f"glam: patch_weights needs three weights (finest, middle, final), got "
                              f"{self.patch_weights}")
        h, w = self.input_size
        if h % 16 or w % 16:
            raise CamkitError(f"glam: input_size {self.input_size} must be multiples of 16 (else a patch at the "
                              "border would overhang the image)")
        ph, pw = self.patch_size
        if not (0 < ph <= h and 0 < pw <= w) or ph % 4 or pw % 4:
            raise CamkitError(f"glam: patch_size {self.patch_size} must fit inside input_size {self.input_size} "
                              "and be a multiple of 4")
        if self.num_patches < 1:
            raise CamkitError(f"glam: num_patches must be >= 1, got {self.num_patches}")
        if not isinstance(self.train_cam_options, dict):
            raise CamkitError(f"glam: train_cam_options must be a mapping, got {self.train_cam_options!r}")
        if self.beta < 0 or self.local_weight < 0:
            raise CamkitError("glam: beta and local_weight must be >= 0")
        return self

    @property
    def mass_index(self) -> int:
        return self.num_classes - 1 if self.mass_class is None else self.mass_class

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (tuples become lists); ``train_cam_options`` only when set."""
        d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}
        if not d["train_cam_options"]:
            del d["train_cam_options"]
        return d


PRESETS: dict[str, dict[str, Any]] = {
    # The released model (model_joint / model_sep): 2 classes, 2944x1920, one 512x512 patch, top 3% / 30%.
    "official": {},
    # Small enough to train on a 2-core CPU in minutes: the GMIC cpu preset's global widths at 256x160,
    # maps on a 16x10 grid (stage strides chosen so the three scales are 1/16, 1/32, 1/64 as released),
    # one 64x64 patch, a narrow stride-1 local trunk.
    "cpu": dict(
        num_classes=1, class_names=("mass",), input_size=(256, 160),
        global_widths=(8, 16, 32, 32, 32), global_blocks=(1, 1, 1, 1, 1), global_strides=(1, 2, 2, 2, 2),
        top_k=0.05, patch_size=(64, 64),
        local_widths=(8, 16, 32, 32), local_blocks=(1, 1, 1, 1), local_in_chans=1,
        beta=1e-3, lr=1e-3,
    ),
}


def resolve_config(preset: str = "official", **overrides: Any) -> GLAMConfig:
    """The preset's config with ``overrides`` applied and validated (unknown names refused, listing the valid
    ones). ``num_classes`` alone also resets ``class_names``."""
    if preset not in PRESETS:
        raise UnknownNameError("glam preset", preset, PRESETS)
    fields = {f.name for f in dataclasses.fields(GLAMConfig)}
    for key in overrides:
        if key not in fields:
            raise OptionError(f"model 'glam' has no option {key!r}.{did_you_mean(key, fields)} Its options: "
                              f"preset, checkpoint, {', '.join(sorted(fields))}")
    values = {**PRESETS[preset], **overrides}
    if "num_classes" in overrides and "class_names" not in overrides:
        n = int(overrides["num_classes"])
        values["class_names"] = ("mass",) if n == 1 else tuple(f"class{i}" for i in range(n))
    for k, v in list(values.items()):
        if isinstance(v, list):
            values[k] = tuple(v)
    return GLAMConfig(**values).validate()
