"""Typed plugin metadata (issue 28): every kind declares the keywords its ``register`` takes; an unknown key, a
wrong type or a missing required key is one line naming the plugin, the entry and the key, reported like any
other failing plugin while the others keep working."""
from __future__ import annotations

import click
import pytest

import camkit
from camkit import hookimpl
from camkit.errors import RegistrationError
from camkit.registry.meta import DatasetMeta, MetadataError, ModelMeta, RecipeSpec, allowed_keys
from camkit.registry.table import Entry, Registry
from camkit.testing import register_strictly


def _model(train_cam=None, width: int = 3):
    """A toy model factory."""
    return {"width": width}


def test_declared_fields_are_stored_typed():
    reg = Registry()
    reg.register_callback("model", "p")("m", _model, examples=[{"width": 2}], presets=["a", "b"], train_cam=False)
    meta = reg.get("model", "m")[0].meta
    assert meta == ModelMeta(examples=({"width": 2},), presets=("a", "b"), options=None, train_cam=False)
    reg.register_callback("dataset", "p")("d", _model)
    assert reg.get("dataset", "d")[0].meta == DatasetMeta(example=None)  # defaults when nothing is said
    assert Entry("cam", "c", object, "p").meta is not None  # an entry built by hand gets its kind's defaults


@pytest.mark.parametrize("kind, fields, key, expect", [
    ("model", {"exmaples": ({},)}, "exmaples", "Did you mean 'examples'? A model's registration takes: examples, "
                                               "presets, options, train_cam (and description)"),
    ("model", {"presets": "cpu"}, "presets", "presets takes a sequence of preset names"),
    ("model", {"train_cam": "no"}, "train_cam", "train_cam takes True or False"),
    ("model", {"examples": [1]}, "examples", "examples takes a sequence of option dicts"),
    ("dataset", {"example": {"n": 8}}, "example", "example takes a callable(folder) -> options dict"),
    ("dataset", {"prepare": lambda: None}, "prepare", "register_commands(prepare) hook"),
    ("cam", {"cost": "one-pass"}, "cost", "A CAM method's registration takes no keys besides description"),
    ("backbone", {"pretrained": True}, "pretrained", "takes no keys besides description"),
])
def test_a_bad_key_names_the_plugin_the_entry_and_the_key(kind, fields, key, expect):
    with pytest.raises(MetadataError) as err:
        Registry().register_callback(kind, "acme")("thing", _model, **fields)
    message = str(err.value)
    assert message.startswith("plugin 'acme' registers the ") and "'thing'" in message
    assert f"'{key}'" in message or f"{key}=" in message
    assert expect in message and "\n" not in message
    assert isinstance(err.value, RegistrationError)  # one line on the command line, like every CamkitError


def test_a_description_must_be_text():
    with pytest.raises(MetadataError, match=r"plugin 'acme' registers the model 'm' with description=42"):
        Registry().register_callback("model", "acme")("m", _model, description=42)


@pytest.mark.parametrize("fields, expect", [
    ({"model": "gmic"}, "with no 'dataset': dataset takes a registered dataset's name"),
    ({"model": "gmic", "dataset": "d", "split_options": {"tset": {}}}, "split_options takes a dict of split"),
    ({"model": "gmic", "dataset": "d", "eval_batch_size": 0}, "eval_batch_size takes a positive int"),
    ({"model": "gmic", "dataset": "d", "distill": {"epochs": 3}}, "distill takes a dict with keys among detector"),
    ({"model": "gmic", "dataset": "d", "distill": {"train": 3}}, "distill takes a dict with keys among detector"),
    ({"model": "gmic", "dataset": "d", "default": "yes"}, "default takes True or False"),
    ({"model": "gmic", "dataset": "d", "epochs": 3}, "the unknown key 'epochs'"),
])
def test_recipe_fields_are_checked(fields, expect):
    with pytest.raises(MetadataError, match="plugin 'acme' registers the recipe 'r'") as err:
        Registry().register_callback("recipe", "acme")("r", **fields)
    assert expect in str(err.value)


def test_recipe_spec_declares_every_preset_field():
    # what camkit's presets held before plugins registered them: nothing may be lost on the way
    assert allowed_keys("recipe") == ["model", "dataset", "model_options", "dataset_options", "split_options",
                                      "train", "eval_batch_size", "distill", "default"]
    spec = RecipeSpec(model="m", dataset="d")
    assert spec.model_options == {} and spec.train == {} and spec.eval_batch_size is None and not spec.default


class _Misspelt:
    @hookimpl
    def register_models(self, register):
        register("misspelt-model", _model, exmaples=({},))


class _Fine:
    @hookimpl
    def register_models(self, register):
        register("fine-model", _model, examples=({},), presets=("x",))


def test_a_bad_key_is_reported_and_the_other_plugins_load(fresh_plugins, capsys):
    host = fresh_plugins.get_host()
    info = host.register(_Misspelt(), name="misspelt")
    assert not info.ok
    assert info.error.startswith("registers the model 'misspelt-model' with the unknown key 'exmaples'")
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "plugin 'misspelt'" in line]
    assert len(lines) == 1 and "'exmaples'" in lines[0] and "It is left out" in lines[0]
    assert "misspelt-model" not in camkit.list_models()
    assert "gmic" in camkit.list_models()  # the built-ins were not touched
    assert host.register(_Fine(), name="fine").ok and "fine-model" in camkit.list_models()
    entry, _ = host.registry.get("model", "fine-model")
    assert entry.meta.presets == ("x",) and entry.meta.examples == ({},)


def test_register_strictly_raises_the_metadata_error(fresh_plugins):
    with pytest.raises(MetadataError, match="plugin 'misspelt' registers the model 'misspelt-model'"):
        with register_strictly(_Misspelt(), name="misspelt"):
            pass
    assert "misspelt" not in fresh_plugins.get_host().plugins


# -- one way to add a command: register_commands(cli, prepare) ----------------------------------------------
@click.command("toyset")
def _toy_prepare() -> None:
    """Prepare the toy set."""


@click.command("hello")
def _hello() -> None:
    """Say hello."""


class _Preparer:
    @hookimpl
    def register_commands(self, prepare):
        prepare.add_command(_toy_prepare)


class _Both:
    @hookimpl
    def register_commands(self, cli, prepare):
        cli.add_command(_hello)
        prepare.add_command(_toy_prepare)  # already taken by _Preparer: refused with a warning


def test_plugins_add_prepare_commands_through_the_command_hook(fresh_plugins, capsys):
    host = fresh_plugins.get_host()
    assert host.register(_Preparer(), name="preparer").ok
    assert host.register(_Both(), name="both").ok
    cli, prepare = click.Group("camkit"), click.Group("prepare")
    cli.add_command(prepare)
    host.add_commands(cli, reserved=set(cli.commands), prepare=prepare)
    assert prepare.commands["toyset"] is _toy_prepare and cli.commands["hello"] is _hello
    # the built-in dataset plugins add theirs the same way
    assert {"vindr", "cbis-ddsm", "inbreast"} <= set(prepare.commands)
    assert any("plugin 'both' adds the command 'toyset', which is already a `camkit prepare` command" in w
               for w in host.plugins["both"].warnings)
    assert "toyset" in capsys.readouterr().err
