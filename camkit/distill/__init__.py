"""Weak to strong: a weakly supervised teacher's CAM boxes train a real detector (``camkit distill``).

:mod:`camkit.distill.pseudo` turns the teacher's maps into targets (and measures them), :mod:`.adapter` trains
a registered detector (camkit.protocols.Detector) through camkit's training loop, :mod:`.run` runs the whole
study and scores it with the bench's engine. docs/distill.md explains it.
"""
