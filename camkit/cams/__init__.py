"""Activation-map methods and the engine that computes all of them from one forward pass.

Nothing is imported here on purpose: ``camkit.cam_maps`` loads ``camkit.cams.engine`` lazily, and the built-in
methods arrive through the ``cams`` entry point like any third-party plugin.
"""
