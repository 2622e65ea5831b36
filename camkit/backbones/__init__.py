"""Backbones a model plugin may build on; camkit's built-in source is timm's zoo (``timm:<name>``)."""
