"""The plugin system: in-process plugins, a real pip-installed third-party package, broken plugins."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import camkit
from camkit import hookimpl
from camkit.errors import RegistrationError, UnknownNameError
from camkit.registry.table import Entry, Registry

PLUGIN_SRC = Path(__file__).parent / "plugins"


class ToyPlugin:
    """A throwaway plugin object registering one model."""

    @hookimpl
    def register_models(self, register):
        register("toy-model", lambda width=3: {"width": width}, description="a toy")


def test_in_process_plugin_registers_and_unregisters(fresh_plugins):
    host = fresh_plugins.get_host()
    info = host.register(ToyPlugin(), name="toy-plugin")
    assert info.ok and info.hooks == ["register_models"]
    assert "toy-model" in camkit.list_models()
    assert camkit.create_model("toy-model", width=5) == {"width": 5}
    host.unregister("toy-plugin")
    assert "toy-model" not in camkit.list_models()


def test_unknown_name_lists_close_matches_and_available(fresh_plugins):
    fresh_plugins.get_host().register(ToyPlugin(), name="toy-plugin")
    with pytest.raises(UnknownNameError) as err:
        camkit.create_model("toy-modle")
    msg = str(err.value)
    assert "unknown model 'toy-modle'" in msg and "Did you mean 'toy-model'?" in msg
    assert "Available:" in msg and "toy-model" in err.value.available


def test_name_collision_names_both_plugins():
    reg = Registry()
    reg.register_callback("cam", "first")("gradcam", object)
    with pytest.raises(RegistrationError, match="both plugin 'first' and plugin 'second'"):
        reg.register_callback("cam", "second")("gradcam", object)


@pytest.mark.parametrize("bad", ["Grad CAM", "", "-x", "UPPER"])
def test_invalid_names_are_refused(bad):
    with pytest.raises(RegistrationError, match="names must be lowercase"):
        Registry().register_callback("model", "p")(bad, object)


def test_non_callable_factory_is_refused():
    with pytest.raises(RegistrationError, match="non-callable factory"):
        Registry().register_callback("model", "p")("m", 42)


def test_namespace_entries_resolve_sub_names():
    reg = Registry()
    reg.add(Entry("backbone", "zoo", lambda sub: sub, "p", namespace=True, names=lambda: ["a1", "b2"]))
    entry, sub = reg.get("backbone", "zoo:a1")
    assert entry.factory(sub) == "a1"
    assert [e.name for e in reg.entries("backbone", "zoo:a*")] == ["zoo:a1"]
    with pytest.raises(UnknownNameError):
        reg.get("backbone", "zoo")


def test_hook_that_raises_is_isolated(fresh_plugins, capsys):
    class Exploding:
        @hookimpl
        def register_cams(self, register):
            register("half-registered", object)
            raise RuntimeError("boom")

    host = fresh_plugins.get_host()
    before = camkit.list_backbones()
    info = host.register(Exploding(), name="exploding")
    assert not info.ok and "raised in register_cams: RuntimeError: boom" in info.error
    assert "half-registered" not in camkit.list_cams()  # a failing plugin leaves nothing half-done
    assert camkit.list_backbones() == before
    assert "plugin 'exploding'" in capsys.readouterr().err


def test_timm_backbones_are_reachable_offline(fresh_plugins):
    assert "timm:resnet18" in camkit.list_backbones("timm:resnet1*")
    net = camkit.create_backbone("timm:resnet18", num_classes=0, in_chans=1)
    assert sum(p.numel() for p in net.parameters()) > 1_000_000
    with pytest.raises(UnknownNameError, match="resnet181"):
        camkit.create_backbone("timm:resnet181")


# -- a real third-party package, installed with pip into a private site directory -------------------
@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site")
    for pkg in ("camkit-hello", "camkit-broken"):
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--no-index", "--target", str(site), str(PLUGIN_SRC / pkg)],
                       check=True, capture_output=True, text=True)
    return site


def _camkit(site: Path, *args: str, plugins: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(site))
    env.pop("CAMKIT_PLUGINS", None)
    if plugins is not None:
        env["CAMKIT_PLUGINS"] = plugins
    return subprocess.run([sys.executable, "-m", "camkit", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_installed_plugin_is_listed_and_broken_ones_reported(plugin_site):
    res = _camkit(plugin_site, "list", "backbones", "--format", "json")
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert {"name": "hello-net", "plugin": "hello"} in [{k: r[k] for k in ("name", "plugin")} for r in rows]
    assert any(r["name"].startswith("timm") for r in rows)  # the collision did not evict the built-in
    err = res.stderr
    for name, why in [("broken-import", "No module named 'camkit_this_module_does_not_exist'"),
                      ("broken-hook", "database password not set"),
                      ("misspelled", "unknown hook(s) register_cam"),
                      ("collides", "registered by both camkit's built-in plugin 'timm' and plugin 'collides'; "
                                   "'timm' keeps the name (it loaded first). Rename it in 'collides'"),
                      # sys.exit() or KeyboardInterrupt from a plugin used to end every command without a word
                      ("exits-on-import", "called sys.exit(3)"),
                      ("interrupts-on-import", "raised KeyboardInterrupt"),
                      ("exits-in-hook", "raised in register_models: called sys.exit('plugin gave up')"),
                      # a misspelt metadata key names the plugin, the entry and the key (issue 28)
                      ("bad-meta", "registers the model 'half-typed' with the unknown key 'exmaples'. Did you "
                                   "mean 'examples'?")]:
        lines = [line for line in err.splitlines() if f"plugin {name!r}" in line]
        assert len(lines) == 1, (name, err)  # reported once, by name
        assert why in lines[0]


def test_plugins_command_names_each_plugin_and_version(plugin_site):
    res = _camkit(plugin_site, "plugins", "--format", "json")
    assert res.returncode == 0, res.stderr
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert rows["hello"]["version"] == "1.2.3" and rows["hello"]["status"] == "ok"
    assert rows["hello"]["distribution"] == "camkit-hello"
    assert rows["timm"]["version"] == camkit.__version__ and rows["timm"]["builtin"] is True
    assert rows["broken-hook"]["status"] == "error"
    assert rows["bad-meta"]["status"] == "error" and "'exmaples'" in rows["bad-meta"]["error"]
    assert rows["gmic"]["status"] == "ok"  # the others load


def test_camkit_plugins_env_limits_loading(plugin_site):
    only_builtin = _camkit(plugin_site, "plugins", "--format", "json", plugins="")
    names = {r["name"] for r in json.loads(only_builtin.stdout)}
    assert "hello" not in names and "timm" in names and only_builtin.stderr == ""
    hello_only = _camkit(plugin_site, "list", "backbones", "--format", "csv", plugins="hello")
    assert "hello-net,hello" in hello_only.stdout and "broken" not in hello_only.stderr
