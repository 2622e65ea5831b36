"""The core names no plugin (issue 28): no module under camkit/ holds a plugin's name (a model, dataset, recipe
or plugin that plugins/ registers) as a string literal — no default, no choice list, no comparison — and no
``model``/``dataset``/``preset`` parameter, field or option defaults to a literal name. Docstrings may mention
plugins (they are examples, not behaviour), and so may longer help texts; the defaults come from the registry
(the default recipe)."""
from __future__ import annotations

import ast
from pathlib import Path

from camkit.registry.host import get_host

REPO = Path(__file__).resolve().parents[1]
CORE = sorted((REPO / "camkit").rglob("*.py"))
# words that are plugin names and also ordinary vocabulary of the core: "cpu" is the torch device (and a recipe)
ORDINARY = {"cpu"}
# a parameter, field or click option of these names must default to None (the registry decides), never a name
NAMING = ("model", "dataset", "preset", "recipe")
# literals in files another change of issue 28 removes (owned elsewhere); delete each line once it is gone
PENDING = {
}


def _plugin_names(ordinary: bool = False) -> set[str]:
    """Every name the plugins under plugins/ provide: their entry points and what they register (without the
    ORDINARY words unless ``ordinary``)."""
    host = get_host()
    outside = {n for n, info in host.plugins.items() if not info.module.startswith("camkit.")}
    names = set(outside)
    for kind in ("model", "dataset", "recipe", "backbone", "cam"):
        names |= {e.name for e in host.registry.entries(kind) if e.plugin in outside}
    return names if ordinary else names - ORDINARY


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def _named_defaults(tree: ast.AST) -> list[tuple[int, str, object]]:
    """(line, name, literal) for every model/dataset/preset parameter, dataclass field or click option whose
    default is a string literal."""
    found = []

    def naming(name: str) -> bool:
        return any(word in name.lower() for word in NAMING)

    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            positional = args.posonlyargs + args.args
            pairs = list(zip(positional[len(positional) - len(args.defaults):], args.defaults))
            pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
            found += [(d.lineno, a.arg, d.value) for a, d in pairs
                      if naming(a.arg) and isinstance(d, ast.Constant) and isinstance(d.value, str)]
        elif isinstance(node, ast.ClassDef):
            for stmt in node.body:
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and naming(stmt.target.id) \
                        and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
                    found.append((stmt.lineno, stmt.target.id, stmt.value.value))
        elif isinstance(node, ast.Call) and ast.unparse(node.func).endswith("option"):
            flags = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            default = next((k.value for k in node.keywords if k.arg == "default"), None)
            if any(naming(f) for f in flags) and isinstance(default, ast.Constant) \
                    and isinstance(default.value, str):
                found.append((node.lineno, "/".join(flags), default.value))
    return found


def test_the_scan_knows_the_plugins():
    names = _plugin_names()
    assert {"gmic", "glam", "classifier", "synthetic", "vindr", "cbis-ddsm", "inbreast", "folder", "paper"} <= names


def test_the_core_holds_no_plugin_name_literal():
    names = _plugin_names()
    found = []
    for path in CORE:
        rel = path.relative_to(REPO).as_posix()
        tree = ast.parse(path.read_text())
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names \
                    and id(node) not in docs and (rel, node.value) not in PENDING:
                found.append(f"{rel}:{node.lineno}: {node.value!r}")
    assert not found, ("the core names a plugin (read it from the registry instead, e.g. the default recipe):\n"
                       + "\n".join(found))


def test_no_model_dataset_or_preset_defaults_to_a_plugin_name():
    names = _plugin_names(ordinary=True)  # here "cpu" counts: preset="cpu" is the recipe, not the device
    found = []
    for path in CORE:
        rel = path.relative_to(REPO).as_posix()
        for line, name, value in _named_defaults(ast.parse(path.read_text())):
            if value in names and (rel, value) not in PENDING:
                found.append(f"{rel}:{line}: {name} defaults to {value!r}")
    assert not found, "defaults that name a plugin's entry (use None and the registry's default):\n" + "\n".join(found)


def test_the_scan_catches_what_it_is_for():
    tree = ast.parse('def f(model_name: str = "gmic", *, preset="cpu", n=3):\n    """gmic here is fine."""\n'
                     'class C:\n    dataset: str = "vindr"\n'
                     '@click.option("--model", default="glam")\ndef g(): pass\n')
    assert sorted((name, value) for _, name, value in _named_defaults(tree)) == [
        ("--model", "glam"), ("dataset", "vindr"), ("model_name", "gmic"), ("preset", "cpu")]
    assert len(_docstrings(tree)) == 1
