"""What model configurations share: a preset plus single-field overrides, checked, JSON-able.

A model's config is a dataclass of every size and default (GMIC's, GLAM's, the classifier's); its presets are
dicts of fields. :func:`resolve_config` applies a preset and the user's options the same way for all of them,
refusing an unknown name with the valid ones; :class:`ModelConfigMixin` gives the mass class and the
JSON-able form.
"""
from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from camkit.errors import CamkitError, OptionError, UnknownNameError, did_you_mean

C = TypeVar("C")


class ModelConfigMixin:
    """``mass_index``, ``check_classes`` and ``to_dict`` for a config dataclass with ``num_classes``,
    ``class_names`` and ``mass_class`` fields."""

    num_classes: int
    class_names: tuple[str, ...]
    mass_class: int | None

    @property
    def mass_index(self) -> int:
        """Index of the "mass" class: ``mass_class``, else the last class."""
        return self.num_classes - 1 if self.mass_class is None else self.mass_class

    def check_classes(self, model: str) -> None:
        """Raise CamkitError unless there is one name per class and ``mass_class`` is one of them."""
        if self.num_classes < 1 or len(self.class_names) != self.num_classes:
            raise CamkitError(f"{model}: class_names {self.class_names} has {len(self.class_names)} names but "
                              f"num_classes={self.num_classes}; pass class_names=(...) with one name per class")
        if self.mass_class is not None and not 0 <= self.mass_class < self.num_classes:
            raise CamkitError(f"{model}: mass_class={self.mass_class} is outside 0..{self.num_classes - 1}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (tuples become lists). An empty ``train_cam_options`` is left out, so a configuration
        (and the model store's hash of it) from before the field existed stays the same."""
        fields = dataclasses.asdict(self)  # type: ignore[call-overload]
        d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in fields.items()}
        if d.get("train_cam_options") == {}:
            del d["train_cam_options"]
        return d


def resolve_config(cls: type[C], presets: dict[str, dict[str, Any]], preset: str, model: str,
                   overrides: dict[str, Any]) -> C:
    """``cls`` from ``presets[preset]`` with ``overrides`` over it, validated (``cls.validate()``).

    Unknown option names are refused with a close match and the valid ones; ``None`` leaves a field to the
    preset (but ``mass_class=None`` means "the last class"); lists become tuples. ``num_classes`` alone also
    resets ``class_names``: the preset's when they have that many, else ``("mass",)`` for one class and
    ``class0..`` for more.
    """
    if preset not in presets:
        raise UnknownNameError(f"{model} preset", preset, presets)
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in overrides:
        if key not in fields:
            raise OptionError(f"model {model!r} has no option {key!r}.{did_you_mean(key, fields)} Its options: "
                              f"preset, checkpoint, {', '.join(sorted(fields))}")
    values = {**presets[preset], **{k: v for k, v in overrides.items() if v is not None or k == "mass_class"}}
    if "num_classes" in overrides and "class_names" not in overrides and overrides["num_classes"] is not None:
        n = int(overrides["num_classes"])
        base = cls(**presets[preset]).class_names  # type: ignore[attr-defined]
        values["class_names"] = base if len(base) == n else (("mass",) if n == 1 else
                                                             tuple(f"class{i}" for i in range(n)))
    for k, v in list(values.items()):
        if isinstance(v, list):
            values[k] = tuple(v)
    return cls(**values).validate()  # type: ignore[attr-defined]
