"""The layout is the architecture: the core imports no plugin, no plugin imports another, and no layer imports
one above it (imports inside functions count; ``if TYPE_CHECKING:`` blocks do not). docs/architecture.md
describes the layers.

The code rules of issue 28 are checked here too: no import cycle between camkit's modules, no private name
imported from another module, no function of camkit (outside camkit/cli) longer than 60 lines or with more than
8 parameters. The offenders left in files their owners are still changing are listed by name below; an entry
that no longer offends fails the test too, so the lists only shrink."""
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
    ("bench", ("camkit.bench", "camkit.testing", "camkit.distill")),
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


def _import_statements(path: Path) -> list[tuple[str, list[ast.alias], int]]:
    """``(absolute module, imported names, line)`` of every import in ``path`` (``import a.b``: one per module,
    with its alias as the only name), skipping ``if TYPE_CHECKING:`` blocks."""
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
            out += [(a.name, [a], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module
            out.append((mod, list(node.names), node.lineno))
    return out


def _imports(path: Path) -> list[str]:
    """Every module ``path`` imports (absolute names), skipping ``if TYPE_CHECKING:`` blocks."""
    out = []
    for mod, names, _ in _import_statements(path):
        out.append(mod)
        out += [f"{mod}.{a.name}" for a in names if a.name != mod]  # "from camkit import training"
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


# -- code rules (issue 28) ---------------------------------------------------------------------------------
MAX_LINES, MAX_PARAMS = 60, 8

# Exceptions to the rules, each named with why (empty since issue 28: every offender was fixed; an entry that no
# longer offends fails too, so these lists only shrink). Import edges that close a cycle:
CYCLE_EDGES_ALLOWED: set[tuple[str, str]] = set()
# "module: imported private name":
PRIVATE_IMPORTS_ALLOWED: set[str] = set()
# "module.function" over the size limits:
LONG_FUNCTIONS_ALLOWED: set[str] = set()
MODULES = {_module_name(p): p for p in CORE}


def _import_graph() -> dict[str, set[str]]:
    """camkit module -> the camkit modules it imports (``from package import module`` names the module)."""
    graph: dict[str, set[str]] = {}
    for me, path in MODULES.items():
        deps = set()
        for mod, names, _ in _import_statements(path):
            subs = [f"{mod}.{a.name}" for a in names if f"{mod}.{a.name}" in MODULES]
            if len(subs) < len(names):  # a name that is not a submodule is read from mod itself
                deps.add(mod)
            deps.update(subs)
        graph[me] = {d for d in deps if d in MODULES and d != me}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_between_camkit_modules():
    graph = _import_graph()
    for a, b in CYCLE_EDGES_ALLOWED:
        assert b in graph.get(a, set()), f"{a} no longer imports {b}: remove the pair from CYCLE_EDGES_ALLOWED"
        assert a in {m for c in _cycles(graph) for m in c if b in c}, \
            f"{a} -> {b} closes no cycle any more: remove the pair from CYCLE_EDGES_ALLOWED"
    left = {a: deps - {b for x, b in CYCLE_EDGES_ALLOWED if x == a} for a, deps in graph.items()}
    assert not _cycles(left), (f"import cycles (function-level imports count): {_cycles(left)}; move what both "
                               "modules need into one of them or a module below both")


def _private_imports(path: Path) -> list[str]:
    """``"module: imported.private_name"`` for each private name ``path`` takes from another camkit or plugin
    module: ``from m import _x``, or ``m._x`` on a module it imported."""
    me = _module_name(path)
    out, modules = [], {}
    for mod, names, _ in _import_statements(path):
        if not mod.startswith("camkit") or mod == me:
            continue
        for a in names:
            if a.name == mod:  # import a.b [as c]: binds c to a.b, or a to a
                modules[a.asname or mod.split(".")[0]] = mod if a.asname else mod.split(".")[0]
                continue
            if a.name.startswith("_") and not a.name.startswith("__"):
                out.append(f"{me}: {mod}.{a.name}")
            modules[a.asname or a.name] = f"{mod}.{a.name}"
    known = set(MODULES) | {_module_name(p) for p in PLUGINS}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            head, _, rest = ast.unparse(node.value).partition(".")
            target = ".".join(filter(None, [modules.get(head), rest]))  # alias.sub._x -> module.sub._x
            if head in modules and target in known and target != me:
                out.append(f"{me}: {target}.{node.attr}")
    return out


def test_no_private_name_is_imported_from_another_module():
    found = {v for p in CORE + PLUGINS for v in _private_imports(p)}
    assert not found - PRIVATE_IMPORTS_ALLOWED, (f"private names used across modules: "
                                                 f"{sorted(found - PRIVATE_IMPORTS_ALLOWED)}; make them public "
                                                 "(a name and a docstring) or move the code")
    assert not PRIVATE_IMPORTS_ALLOWED - found, (f"no longer offending, remove from PRIVATE_IMPORTS_ALLOWED: "
                                                 f"{sorted(PRIVATE_IMPORTS_ALLOWED - found)}")


def _oversized(path: Path) -> dict[str, str]:
    """``{"module.function": "N lines, P parameters"}`` for each function over the limits (parameters: positional
    and keyword-only, without self/cls; *args and **kwargs not counted)."""
    me, out = _module_name(path), {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            params = [x for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg not in ("self", "cls")]
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_LINES or len(params) > MAX_PARAMS:
                out[f"{me}.{node.name}"] = f"{lines} lines, {len(params)} parameters"
    return out


def test_no_long_function_and_none_with_many_parameters():
    found: dict[str, str] = {}
    for path in CORE:
        if not _module_name(path).startswith("camkit.cli"):  # click commands take one parameter per option
            found.update(_oversized(path))
    new = {k: v for k, v in found.items() if k not in LONG_FUNCTIONS_ALLOWED}
    assert not new, (f"functions over {MAX_LINES} lines or {MAX_PARAMS} parameters: {new}; split them, or pass "
                     "a config object (a frozen dataclass) instead of many options")
    assert not LONG_FUNCTIONS_ALLOWED - set(found), (f"within the limits now, remove from LONG_FUNCTIONS_ALLOWED: "
                                                     f"{sorted(LONG_FUNCTIONS_ALLOWED - set(found))}")
