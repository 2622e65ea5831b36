"""Built-in plugin: the five activation-map methods of the paper, registered like any third party's."""
from __future__ import annotations

from ..hookspecs import hookimpl


@hookimpl
def register_cams(register):
    from .cam import CAM
    from .gradcam import GradCAM
    from .gradcampp import GradCAMPlusPlus
    from .layercam import LayerCAM
    from .xgradcam import XGradCAM

    for method in (CAM, GradCAM, GradCAMPlusPlus, XGradCAM, LayerCAM):
        register(method.name, method)
