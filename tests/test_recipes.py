"""Recipes (``--preset``) come from the plugins (issue 28): the default recipe is the one registered default,
two defaults are a clear error naming both plugins, and ``--preset``'s choices are read from the registry."""
from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from camkit import hookimpl
from camkit.bench.config import BenchConfig
from camkit.bench.recipe import default_preset, preset_model, resolve_recipe
from camkit.cli.options import PresetChoice
from camkit.errors import RegistrationError, UnknownNameError
from camkit.registry.api import default_model, default_recipe, describe, get_recipe, list_recipes


def test_the_builtin_recipes_and_the_default():
    assert list_recipes(sort=False) == ["cpu", "paper", "cbis-ddsm", "inbreast"]  # as --preset listed them
    assert default_recipe() == "cpu" and default_model() == "gmic"
    cpu = get_recipe("cpu")
    assert (cpu.model, cpu.dataset, cpu.default, cpu.eval_batch_size) == ("gmic", "synthetic", True, 64)
    assert cpu.split_options == {"train": {"n": 1600}, "val": {"n": 200}, "test": {"n": 400}}
    assert get_recipe("paper").dataset == "vindr" and not get_recipe("paper").default
    rows = {r["name"]: r for r in describe("recipe")}
    assert rows["cpu"]["default"] == "yes" and rows["paper"]["plugin"] == "gmic"


def test_default_preset_and_model_read_the_registry():
    assert default_preset(None) == "cpu" and default_preset("synthetic") == "cpu"
    assert default_preset("cbis-ddsm") == "cbis-ddsm" and default_preset("folder") == "cpu"
    assert preset_model(None) == "gmic" and preset_model("paper") == "gmic"
    cfg = BenchConfig()
    assert cfg.model is None and cfg.preset is None  # filled from the default recipe, not from literals
    resolved = cfg.resolved()
    assert (resolved.model, resolved.preset, resolved.dataset) == ("gmic", "cpu", "synthetic")


def test_the_resolved_default_bench_is_what_it_was():
    # the configuration (and so the hash, the run folder and the numbers) of `camkit bench` with no options
    d = BenchConfig(preset=default_preset(None)).resolved().to_dict()
    assert d["model"] == "gmic" and d["preset"] == "cpu" and d["dataset"] == "synthetic"
    assert d["model_options"] == {"preset": "cpu", "num_classes": 1} and d["dataset_options"] == {}
    assert d["split_options"] == {"train": {"n": 1600}, "val": {"n": 200}, "test": {"n": 400}}
    assert d["train"] == {"epochs": 8, "batch_size": 32, "amp": "off"} and d["eval_batch_size"] == 64
    assert BenchConfig().resolved().to_dict() == d


def test_an_unknown_preset_lists_the_registered():
    with pytest.raises(UnknownNameError, match=r"unknown preset 'papr'\. Did you mean 'paper'\?.*cbis-ddsm"):
        resolve_recipe("papr")


class _Rival:
    """A third-party plugin that registers a recipe and claims the default too."""

    @hookimpl
    def register_recipes(self, register):
        register("rival-recipe", model="gmic", dataset="synthetic", model_options={"preset": "cpu"},
                 split_options={"train": {"n": 8}}, default=True, description="a rival default")


class _Extra:
    @hookimpl
    def register_recipes(self, register):
        register("extra", model="classifier", dataset="synthetic", train={"epochs": 1}, eval_batch_size=4)


def test_two_defaults_are_an_error_naming_both_plugins(fresh_plugins):
    assert fresh_plugins.get_host().register(_Rival(), name="rival").ok
    with pytest.raises(RegistrationError) as err:
        default_recipe()
    message = str(err.value)
    assert "'cpu' (plugin 'gmic')" in message and "'rival-recipe' (plugin 'rival')" in message
    assert "only one may" in message and "--preset" in message
    with pytest.raises(RegistrationError, match="each declare themselves the default"):
        BenchConfig().resolved()
    # a named recipe still works
    assert BenchConfig(preset="cpu").resolved().model == "gmic"
    assert resolve_recipe("rival-recipe").split_options["train"] == {"n": 8}


def test_no_default_is_an_error(fresh_plugins):
    fresh_plugins.get_host().unregister("gmic")
    with pytest.raises(RegistrationError, match="no registered recipe declares itself the default"):
        default_model()


def test_a_recipe_registered_later_is_a_choice(fresh_plugins):
    choice = PresetChoice()  # made before the plugin registers: the choices are read when asked
    fresh_plugins.get_host().register(_Extra(), name="extra-plugin")
    assert "extra" in choice.choices and choice.choices[0] == "cpu"
    assert choice.convert("extra", None, None) == "extra"
    with pytest.raises(click.BadParameter) as err:
        choice.convert("nope", None, None)
    assert all(name in str(err.value) for name in ("cpu", "paper", "cbis-ddsm", "inbreast", "extra"))
    recipe = resolve_recipe("extra")
    assert recipe.model == "classifier" and recipe.train == {"epochs": 1} and recipe.eval_batch_size == 4


def test_train_preset_lists_the_registered_recipes():
    from camkit.cli.app import main

    res = CliRunner().invoke(main, ["train", "--preset", "nope"])
    assert res.exit_code == 2
    assert "'nope' is not one of 'cpu', 'paper', 'cbis-ddsm', 'inbreast'" in res.output
    helped = CliRunner().invoke(main, ["train", "--help"])
    assert "[cpu|paper|cbis-ddsm|inbreast]" in helped.output
