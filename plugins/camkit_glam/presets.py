"""GLAM configurations: every size is a field; ``official`` is the released model, ``cpu`` trains in minutes.

A preset is only a starting point: ``resolve_config("cpu", top_k=0.05)`` overrides single fields, and unknown
field names are refused with the list of valid ones.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Any

from camkit.errors import CamkitError
from camkit.nn.config import ModelConfigMixin
from camkit.nn.config import resolve_config as _resolve
from camkit.nn.evidence import EVIDENCE_SPACES
from camkit.registry.options import ImageSize, Range

# the fields' annotations are the --model-opt declarations camkit checks before building (plugin.py)
Count = Annotated[int, Range(min=1)]
Counts = Annotated[tuple[int, ...], Range(min=1)]
Fraction = Annotated[float, Range(0, 1)]
NonNegative = Annotated[float, Range(min=0)]


@dataclass
class GLAMConfig(ModelConfigMixin):
    """All of GLAM's sizes and training defaults (JSON-able; tuples for shapes)."""

    num_classes: Count = 2
    class_names: tuple[str, ...] = ("benign", "malignant")
    # index of the "mass" class predict() reports; None = the last class
    mass_class: Annotated[int, Range(min=0)] | None = None
    input_size: ImageSize = (2944, 1920)  # (H, W), multiples of 16
    # global network: GMIC's pre-activation ResNet-22; maps are read off three stages (fine to coarse)
    global_widths: Counts = (16, 32, 64, 128, 256)
    global_blocks: Counts = (2, 2, 2, 2, 2)
    global_strides: Counts = (1, 2, 2, 2, 2)
    # the two raw stage outputs with a head (the third is the final map)
    map_stages: Annotated[tuple[int, int], Range(min=0)] = (2, 3)
    top_k: Fraction = 0.03  # fraction of cells averaged into each scale's score (percent_k)
    # the patch search map: weights of the (finest, middle, final) maps
    patch_weights: Annotated[tuple[float, float, float], Range(min=0)] = (0.2, 0.6, 0.2)
    num_patches: Count = 1
    patch_size: ImageSize = (512, 512)  # whole pixels: patches index the image
    # local network: a ResNet-34 trunk with every stage at stride 1 (a map at 1/4 of the patch)
    local_widths: Counts = (64, 128, 256, 512)
    local_blocks: Counts = (3, 4, 6, 3)
    local_in_chans: Count = 3  # the grey patch is repeated to this many channels
    local_top_k: Fraction = 0.3  # fraction of patch-map pixels averaged into y_local
    # training-time map that picks the patch: "cam" (GLAM's own multi-scale map) or any registered CAM method
    train_cam: str = "cam"
    train_cam_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    # loss (not released; docs/models.md): BCE on y_global and y_local + beta * mean of the global maps
    local_weight: NonNegative = 1.0
    beta: NonNegative = 1e-4
    lr: NonNegative = 1e-5
    # camkit addition (as for GMIC, camkit.nn.evidence): pull the patch map onto the pixels whose input
    # gradient moves y_global; weight 0 = off
    evidence_weight: NonNegative = 0.0
    evidence_power: NonNegative = 4.0
    evidence_space: str = "map"

    def validate(self) -> GLAMConfig:
        """Check field consistency; raise CamkitError naming the bad field."""
        self.check_classes("glam")
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
        if self.beta < 0 or self.local_weight < 0 or self.evidence_weight < 0:
            raise CamkitError("glam: beta, local_weight and evidence_weight must be >= 0")
        if self.evidence_power <= 0 or self.evidence_space not in EVIDENCE_SPACES:
            raise CamkitError(f"glam: evidence_power must be > 0 and evidence_space one of "
                              f"{', '.join(EVIDENCE_SPACES)}")
        return self


PRESETS: dict[str, dict[str, Any]] = {
    # The released model (model_joint / model_sep): 2 classes, 2944x1920, one 512x512 patch, top 3% / 30%.
    "official": {},
    # Small enough to train on a 2-core CPU in minutes, and localising the synthetic masses (docs/models.md,
    # the GLAM study): the GMIC cpu preset's narrow one-block stages at 256x160, every stage after the first
    # at stride 1 so the three maps share a 32x20 grid (1/8; at the released 1/16-1/64 the final map is 4x3),
    # one 64x64 patch, a narrow stride-1 local trunk, and evidence alignment (without it the maps fired
    # beside the masses, as GMIC's did) at weight 0.3: at 1.0 one seed in three stopped learning (AUC 0.52).
    "cpu": dict(
        num_classes=1, class_names=("mass",), input_size=(256, 160),
        global_widths=(8, 16, 32, 32, 32), global_blocks=(1, 1, 1, 1, 1), global_strides=(1, 2, 1, 1, 1),
        top_k=0.05, patch_size=(64, 64),
        local_widths=(8, 16, 32, 32), local_blocks=(1, 1, 1, 1), local_in_chans=1,
        beta=1e-3, lr=1e-3, evidence_weight=0.3,
    ),
}


def resolve_config(preset: str = "official", **overrides: Any) -> GLAMConfig:
    """The preset's config with ``overrides`` applied and validated (:func:`camkit.nn.config.resolve_config`:
    unknown names refused with the valid ones; ``num_classes`` alone also resets ``class_names``)."""
    return _resolve(GLAMConfig, PRESETS, preset, "glam", overrides)
