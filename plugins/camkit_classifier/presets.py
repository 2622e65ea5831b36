"""The pooled classifier's configurations: every size is a field; ``cpu`` trains on a 2-core CPU in minutes."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from camkit.errors import CamkitError, OptionError, UnknownNameError, did_you_mean

from .pooling import POOLINGS


@dataclass
class ClassifierConfig:
    """All of the classifier's options (JSON-able; tuples for shapes)."""

    backbone: str = "timm:resnet18"  # any registered backbone that gives feature maps (timm's features_only)
    backbone_options: dict[str, Any] = field(default_factory=dict)  # passed to the backbone factory
    input_size: tuple[int, int] = (2944, 1920)  # (H, W)
    pooling: str = "avg"  # one of pooling.POOLINGS
    top_t: float = 0.02  # "topt": fraction of cells pooled (GMIC's t)
    lse_r: float = 5.0  # "lse": sharpness r
    attn_dim: int = 64  # "attention": hidden size of the gated attention
    num_classes: int = 1
    class_names: tuple[str, ...] = ("mass",)
    mass_class: int | None = None  # index of the "mass" class; None = the last class
    cam_layers: tuple[str, ...] = ()  # dotted names test-time CAMs hook; () = the backbone's last stage
    lr: float = 1e-3

    def validate(self) -> ClassifierConfig:
        """Check field consistency; raise CamkitError naming the bad field."""
        if self.pooling not in POOLINGS:
            raise CamkitError(f"classifier: pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        if self.num_classes < 1 or len(self.class_names) != self.num_classes:
            raise CamkitError(f"classifier: class_names {self.class_names} must have num_classes="
                              f"{self.num_classes} names")
        if self.mass_class is not None and not 0 <= self.mass_class < self.num_classes:
            raise CamkitError(f"classifier: mass_class={self.mass_class} is outside 0..{self.num_classes - 1}")
        if not 0.0 < self.top_t <= 1.0:
            raise CamkitError(f"classifier: top_t must be in (0, 1], got {self.top_t}")
        if self.lse_r <= 0 or self.attn_dim < 1:
            raise CamkitError("classifier: lse_r must be > 0 and attn_dim >= 1")
        if not isinstance(self.backbone_options, dict):
            raise CamkitError(f"classifier: backbone_options must be a mapping, got {self.backbone_options!r}")
        if len(self.input_size) != 2 or min(self.input_size) < 32:
            raise CamkitError(f"classifier: input_size must be (H, W) of at least 32 pixels, got {self.input_size}")
        return self

    @property
    def mass_index(self) -> int:
        return self.num_classes - 1 if self.mass_class is None else self.mass_class

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (tuples become lists)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


PRESETS: dict[str, dict[str, Any]] = {
    # ResNet-18 on the whole mammogram, CAM's own setting (global average pooling)
    "default": {},
    # Localises the synthetic masses on a 2-core CPU (docs/models.md, the pooling study): a narrow ResNet-10t
    # cut to three one-block stages (stride 16: a 16x10 map at 256x160, GMIC cpu's grid) keeps the receptive
    # field near the mass, and top-t pooling lets the few cells on it carry the score. With the 4-stage
    # dilated trunk the maps fired beside the masses, and with average pooling they spread over the breast.
    "cpu": dict(
        backbone="timm:resnet10t", input_size=(256, 160), pooling="topt",
        backbone_options={"channels": [16, 32, 64], "layers": [1, 1, 1], "stem_width": 8},
    ),
}


def resolve_config(preset: str = "default", **overrides: Any) -> ClassifierConfig:
    """The preset's config with ``overrides`` applied and validated (unknown names refused, listing the valid
    ones). ``num_classes`` alone also resets ``class_names``."""
    if preset not in PRESETS:
        raise UnknownNameError("classifier preset", preset, PRESETS)
    fields = {f.name for f in dataclasses.fields(ClassifierConfig)}
    for key in overrides:
        if key not in fields:
            raise OptionError(f"model 'classifier' has no option {key!r}.{did_you_mean(key, fields)} Its "
                              f"options: preset, checkpoint, {', '.join(sorted(fields))}")
    values = {**PRESETS[preset], **overrides}
    if "num_classes" in overrides and "class_names" not in overrides:
        n = int(overrides["num_classes"])
        values["class_names"] = ("mass",) if n == 1 else tuple(f"class{i}" for i in range(n))
    for k, v in list(values.items()):
        if isinstance(v, list) and k != "backbone_options":
            values[k] = tuple(v)
    return ClassifierConfig(**values).validate()
