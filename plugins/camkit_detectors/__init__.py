"""camkit's built-in object detectors for ``camkit distill``: FCOS, RetinaNet and Faster R-CNN (torchvision's)
with a feature pyramid over any registered backbone, single-channel, one class (mass), trained from scratch or
from a local state dict."""
