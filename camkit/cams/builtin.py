"""Built-in plugin: the five activation-map methods of the paper, registered like any third party's."""
from __future__ import annotations

from camkit.registry.hookspecs import hookimpl


@hookimpl
def register_cams(register):
    from camkit.cams.methods.cam import CAM
    from camkit.cams.methods.gradcam import GradCAM
    from camkit.cams.methods.gradcampp import GradCAMPlusPlus
    from camkit.cams.methods.layercam import LayerCAM
    from camkit.cams.methods.xgradcam import XGradCAM

    for method in (CAM, GradCAM, GradCAMPlusPlus, XGradCAM, LayerCAM):
        register(method.name, method)
