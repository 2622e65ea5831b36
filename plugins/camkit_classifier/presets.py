"""The pooled classifier's configurations: every size is a field; ``cpu`` trains on a 2-core CPU in minutes."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from camkit.errors import CamkitError
from camkit.nn.config import ModelConfigMixin
from camkit.nn.config import resolve_config as _resolve
from camkit.registry.options import ImageSize, Range

from .pooling import POOLINGS


@dataclass
class ClassifierConfig(ModelConfigMixin):
    """All of the classifier's options (JSON-able; tuples for shapes)."""

    backbone: str = "timm:resnet18"  # any registered backbone that gives feature maps (timm's features_only)
    backbone_options: dict[str, Any] = field(default_factory=dict)  # passed to the backbone factory
    input_size: ImageSize = (2944, 1920)  # (H, W); the annotations are the --model-opt declarations (plugin.py)
    pooling: str = "avg"  # one of pooling.POOLINGS
    top_t: Annotated[float, Range(0, 1)] = 0.02  # "topt": fraction of cells pooled (GMIC's t)
    lse_r: Annotated[float, Range(min=0)] = 5.0  # "lse": sharpness r
    attn_dim: Annotated[int, Range(min=1)] = 64  # "attention": hidden size of the gated attention
    num_classes: Annotated[int, Range(min=1)] = 1
    class_names: tuple[str, ...] = ("mass",)
    mass_class: Annotated[int, Range(min=0)] | None = None  # index of the "mass" class; None = the last class
    cam_layers: tuple[str, ...] = ()  # dotted names test-time CAMs hook; () = the backbone's last stage
    lr: Annotated[float, Range(min=0)] = 1e-3

    def validate(self) -> ClassifierConfig:
        """Check field consistency; raise CamkitError naming the bad field."""
        if self.pooling not in POOLINGS:
            raise CamkitError(f"classifier: pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        self.check_classes("classifier")
        if not 0.0 < self.top_t <= 1.0:
            raise CamkitError(f"classifier: top_t must be in (0, 1], got {self.top_t}")
        if self.lse_r <= 0 or self.attn_dim < 1:
            raise CamkitError("classifier: lse_r must be > 0 and attn_dim >= 1")
        if not isinstance(self.backbone_options, dict):
            raise CamkitError(f"classifier: backbone_options must be a mapping, got {self.backbone_options!r}")
        if len(self.input_size) != 2 or min(self.input_size) < 32:
            raise CamkitError(f"classifier: input_size must be (H, W) of at least 32 pixels, got {self.input_size}")
        return self


PRESETS: dict[str, dict[str, Any]] = {
    # ResNet-18 on the whole mammogram, CAM's own setting (global average pooling)
    "default": {},
    # Localises the synthetic masses on a 2-core CPU (docs/models.md, the pooling study): a narrow ResNet-10t
    # cut to three one-block stages (stride 16: a 16x10 map at 256x160, GMIC cpu's grid) keeps the receptive
    # field near the mass, and log-sum-exp pooling lets the few cells on it carry the score (top-t did as
    # well on three seeds, 0.81-0.88; LSE 0.80-0.89 with a better CAM). With the 4-stage dilated trunk the
    # maps fired beside the masses, and with average pooling they spread over the breast.
    "cpu": dict(
        backbone="timm:resnet10t", input_size=(256, 160), pooling="lse",
        backbone_options={"channels": [16, 32, 64], "layers": [1, 1, 1], "stem_width": 8},
    ),
}


def resolve_config(preset: str = "default", **overrides: Any) -> ClassifierConfig:
    """The preset's config with ``overrides`` applied and validated (:func:`camkit.nn.config.resolve_config`:
    unknown names refused with the valid ones; ``num_classes`` alone also resets ``class_names``)."""
    return _resolve(ClassifierConfig, PRESETS, preset, "classifier", overrides)
