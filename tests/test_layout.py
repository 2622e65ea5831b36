"""The layout is the architecture: the core imports no plugin, no plugin imports another, and no layer imports
one above it (imports inside functions count; ``if TYPE_CHECKING:`` blocks do not). docs/architecture.md
describes the layers."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# lowest first; a module may import its own layer and those below, never one above
LAYERS = [
    ("foundation", ("camkit.errors", "camkit.protocols", "camkit.registry", "camkit.storage")),
    ("data", ("camkit.data",)),
    ("cams", ("camkit.cams", "camkit.backbones", "camkit.nn")),
    ("metrics", ("camkit.metrics",)),
    ("inference", ("camkit.inference",)),
    ("training", ("camkit.training",)),
    ("bench", ("camkit.bench", "camkit.testing")),
    ("ui", ("camkit.ui",)),
    ("cli", ("camkit.cli",)),
]
FACADE = {"camkit", "camkit.__main__"}  # the lazy top-level API and `python -m camkit`


def _layer(module: str) -> int | None:
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    return None


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts[1:] if rel.parts[0] == "plugins" else rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[str]:
    """Every module ``path`` imports (absolute names), skipping ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text())
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for n in ast.walk(node)}
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module
            out.append(mod)
            out += [f"{mod}.{a.name}" for a in node.names]  # "from camkit import training"
    return out


CORE = sorted((REPO / "camkit").rglob("*.py"))
PLUGINS = sorted(p for p in (REPO / "plugins").rglob("*.py"))


def test_every_core_module_has_a_layer():
    missing = [_module_name(p) for p in CORE if _module_name(p) not in FACADE and _layer(_module_name(p)) is None]
    assert not missing, f"modules outside every layer of tests/test_layout.py: {missing}"


@pytest.mark.parametrize("path", CORE, ids=lambda p: _module_name(p))
def test_core_imports_no_plugin_and_no_layer_above(path):
    me = _module_name(path)
    mine = _layer(me)
    for mod in _imports(path):
        assert not mod.startswith("camkit_"), f"{me} imports the plugin {mod}: the core names no plugin"
        theirs = _layer(mod) if mod.startswith("camkit.") else None
        if mine is not None and theirs is not None:
            assert theirs <= mine, (f"{me} (layer {LAYERS[mine][0]}) imports {mod} (layer {LAYERS[theirs][0]}): "
                                    "data flows one way; move the code or pass the object in")


@pytest.mark.parametrize("path", PLUGINS, ids=lambda p: _module_name(p))
def test_no_plugin_imports_another(path):
    me = _module_name(path).split(".")[0]
    for mod in _imports(path):
        top = mod.split(".")[0]
        if top.startswith("camkit_"):
            assert top == me, f"{_module_name(path)} imports {mod}: plugins depend on camkit only, never on each other"
