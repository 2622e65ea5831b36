"""Built-in plugin: every timm model as a backbone, ``timm:<name>``, created offline."""
from __future__ import annotations

from typing import Any

from camkit.registry.hookspecs import hookimpl


def create_timm_backbone(name: str, pretrained: bool = False, **kwargs: Any):
    """A timm model by name; ``pretrained=True`` only works with weights already in the local cache."""
    import timm

    if not timm.is_model(name):
        from camkit.errors import UnknownNameError

        raise UnknownNameError("timm backbone", name, timm.list_models())
    return timm.create_model(name, pretrained=pretrained, **kwargs)


def _timm_names() -> list[str]:
    import timm

    return timm.list_models()


@hookimpl
def register_backbones(register):
    register("timm", create_timm_backbone, namespace=True, names=_timm_names,
             description="Any timm model, e.g. timm:resnet18 (offline, pretrained=False by default)")
