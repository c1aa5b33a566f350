"""The package's shape: no import cycle inside `proxy/`, and a package map that names every
module.

Every `import` counts, at module level or inside a function: a cycle hidden in a function body
is still a cycle, only a later one. `if TYPE_CHECKING:` imports are left out (they never run).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "proxy"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
    return name == "TYPE_CHECKING"


def _imports(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    found: set[str] = set()
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _type_checking_only(node):
            skipped.update(id(child) for inner in node.body for child in ast.walk(inner))
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import sub` imports the submodule when there is one.
            names = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        else:
            continue
        found.update(name for name in names if name in known and name != module)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {
        name: _imports(
            ast.parse(path.read_text(encoding="utf-8")), name, path.name == "__init__.py", known
        )
        for name, path in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as the list of modules along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def test_the_checker_sees_imports_and_finds_a_cycle() -> None:
    graph = import_graph()
    assert "proxy.types" in graph["proxy.errors"]
    assert "proxy.midstream" in graph["proxy.handlers"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_proxy() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


# Modules that catch aiohttp's or the outgoing client's exceptions for a reason other than
# calling a provider: the e2e matrix is a client of the daemon, the simulators are servers, and
# the outgoing client turns the socket layer's errors into its own.
NOT_UPSTREAM = ("proxy/e2e.py", "proxy/simulate/", "proxy/security/http1.py")


# What the outgoing client raises (`proxy.security.http1`), and what it and the socket layer
# raise under a builtin name: on the way to a provider, only the boundary may catch these.
CLIENT_ERRORS = frozenset(
    {
        "ClientFailure",
        "ConnectFailed",
        "Disconnected",
        "BadResponse",
        "HeaderRefused",
        "RedirectRefused",
        "DestinationRefused",
    }
)
LOWER_LAYER_BUILTINS = frozenset(
    {"ValueError", "OSError", "ConnectionError", "TimeoutError", "Exception", "BaseException"}
)


def _catches_lower_layer(tree: ast.AST, *, builtins: bool = False) -> bool:
    """An except clause that catches aiohttp's or the outgoing client's exceptions (`builtins`:
    or what they raise under a builtin name) and does not re-raise them unchanged (a clean-up
    does)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler):
            last = node.body[-1]
            if isinstance(last, ast.Raise) and last.exc is None:
                continue
            if node.type is None:
                return builtins
            for name in ast.walk(node.type):
                if isinstance(name, ast.Name) and (
                    name.id == "aiohttp"
                    or name.id in CLIENT_ERRORS
                    or (builtins and name.id in LOWER_LAYER_BUILTINS)
                ):
                    return True
    return False


def test_one_module_maps_the_outgoing_client_s_errors() -> None:
    catching = sorted(
        str(path.relative_to(ROOT))
        for path in PACKAGE.rglob("*.py")
        if _catches_lower_layer(ast.parse(path.read_text(encoding="utf-8")))
    )
    assert "proxy/providers/boundary.py" in catching  # the checker sees what it looks for
    assert [p for p in catching if not p.startswith(NOT_UPSTREAM)] == [
        "proxy/providers/boundary.py"
    ]
    # The transports call the client: none of them catches what it raises under a builtin name.
    transports = sorted(
        str(path.relative_to(ROOT))
        for path in (PACKAGE / "providers").glob("*.py")
        if _catches_lower_layer(ast.parse(path.read_text(encoding="utf-8")), builtins=True)
    )
    assert transports == ["proxy/providers/boundary.py"]
    assert _catches_lower_layer(
        ast.parse("try:\n    pass\nexcept ValueError:\n    pass"), builtins=True
    )


def test_every_outgoing_request_goes_through_the_one_client() -> None:
    """Nothing on the way to a provider builds an aiohttp client session: the outgoing client
    comes from `proxy.security.outgoing` alone (the e2e matrix and the simulators talk to the
    daemon and to themselves)."""
    building = sorted(
        str(path.relative_to(ROOT))
        for path in PACKAGE.rglob("*.py")
        if re.search(r"\b(ClientSession|Client)\(", path.read_text(encoding="utf-8"))
    )
    builders = [p for p in building if not p.startswith(NOT_UPSTREAM)]
    assert builders == ["proxy/security/outgoing.py"]


def test_the_package_map_names_every_module() -> None:
    import proxy

    doc = proxy.__doc__ or ""
    names = {path.name for path in PACKAGE.glob("*.py")} - {"__init__.py"}
    names |= {f"{path.parent.name}/" for path in PACKAGE.glob("*/__init__.py")}
    missing = sorted(name for name in names if name not in doc)
    assert not missing, f"proxy/__init__.py's package map does not name {missing}"


if __name__ == "__main__":
    found = find_cycle(import_graph())
    print(" -> ".join(found) if found else "no import cycle")
