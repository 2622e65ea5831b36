"""Building blocks that several models share (GMIC and GLAM use them all; a plugin may too): the
pre-activation ResNet of their global networks, the fast CPU stem, top-fraction pooling, region retrieval,
crops and paste-back, and the train-time CAM maps that choose the regions. No model lives here."""
