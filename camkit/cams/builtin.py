"""Built-in plugin: camkit's activation-map methods, registered like any third party's."""
from __future__ import annotations

from camkit.registry.hookspecs import hookimpl


@hookimpl
def register_cams(register):
    from camkit.cams.methods.ablationcam import AblationCAM
    from camkit.cams.methods.cam import CAM
    from camkit.cams.methods.eigencam import EigenCAM
    from camkit.cams.methods.eigengradcam import EigenGradCAM
    from camkit.cams.methods.fem import FEM
    from camkit.cams.methods.finercam import FinerCAM
    from camkit.cams.methods.fullgrad import FullGrad
    from camkit.cams.methods.gradcam import GradCAM
    from camkit.cams.methods.gradcam_elementwise import GradCAMElementWise
    from camkit.cams.methods.gradcampp import GradCAMPlusPlus
    from camkit.cams.methods.hirescam import HiResCAM
    from camkit.cams.methods.iscam import ISCAM
    from camkit.cams.methods.kpcacam import KPCACAM
    from camkit.cams.methods.layercam import LayerCAM
    from camkit.cams.methods.random_map import RandomCAM
    from camkit.cams.methods.scorecam import ScoreCAM
    from camkit.cams.methods.shapleycam import ShapleyCAM
    from camkit.cams.methods.smoothgradcampp import SmoothGradCAMpp
    from camkit.cams.methods.sscam import SSCAM
    from camkit.cams.methods.xgradcam import XGradCAM

    for method in (CAM, GradCAM, GradCAMPlusPlus, XGradCAM, LayerCAM, HiResCAM, GradCAMElementWise, EigenCAM,
                   EigenGradCAM, KPCACAM, FEM, RandomCAM, ShapleyCAM, FinerCAM,
                   FullGrad, ScoreCAM, AblationCAM, SSCAM, ISCAM, SmoothGradCAMpp):
        register(method.name, method)
