"""The leaves stay leaves: no hidden import cycle, every top-level module in a layer.

import-linter (``lint-imports``, the contracts in pyproject.toml) checks the imports between
layers, lazy ones included, but only between the modules the layers name. These tests guard the
rest: that no function imports a module of ours lazily (the way ``channels/slack/settings.py``
once imported ``config.read_secret``, a cycle Python never complained about and the contract
never saw, config being in no layer), and that the layers contract names every top-level module.
"""

from __future__ import annotations

import ast
import pkgutil
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "inbox_daemon"
PYPROJECT = ROOT / "pyproject.toml"

#: Function-level imports of our own modules that are there on purpose, by importing module,
#: imported module and imported name. Each must keep a reason; none may import the config.
ALLOWED_LAZY_IMPORTS: dict[tuple[str, str, str], str] = {
    # The mail parser (and the mail-parser library under it) is loaded on first use, not when a
    # channel is imported: with parse_in_worker only the worker process parses IMAP mail.
    (
        "inbox_daemon.channels.email.delivery",
        "inbox_daemon.channels.email.parse",
        "parse_message",
    ): "the parser is imported on first use (parse_lazily)",
    (
        "inbox_daemon.channels.email.delivery",
        "inbox_daemon.channels.email.spool",
        "parse_file",
    ): "the file parser is imported on first use (parse_file_lazily)",
    (
        "inbox_daemon.channels.email.spool",
        "inbox_daemon.channels.email.parse",
        "parse_message",
    ): "imap.py imports spool for its helpers; the parser only when a file is parsed",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool) -> list[str]:
    """``module:name`` for each name an import statement takes (``module:`` for ``import``)."""
    if isinstance(node, ast.Import):
        return [f"{alias.name}:" for alias in node.names]
    module = node.module or ""
    if node.level:  # relative: resolved against the importing module's package
        base = importer.split(".")
        base = base[: len(base) - node.level + (1 if is_package else 0)]
        module = ".".join([*base, module] if module else base)
    return [f"{module}:{alias.name}" for alias in node.names]


def lazy_imports() -> Iterator[tuple[str, str, str, int]]:
    """(importing module, imported module, name, line) of every import inside a function."""
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = module_name(path)
        tree = ast.parse(path.read_text(), filename=str(path))
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(func):
                if not isinstance(node, ast.Import | ast.ImportFrom):
                    continue
                for target in imported(node, importer, path.name == "__init__.py"):
                    module, _, name = target.partition(":")
                    if module == "inbox_daemon" or module.startswith("inbox_daemon."):
                        yield importer, module, name, node.lineno


def test_no_module_of_ours_is_imported_inside_a_function() -> None:
    found = {(a, b, c): line for a, b, c, line in lazy_imports()}
    unexpected = sorted(
        f"{a}:{line} imports {b}.{c}"
        for (a, b, c), line in found.items()
        if (a, b, c) not in ALLOWED_LAZY_IMPORTS
    )
    assert not unexpected, (
        "import these at the top of the module (a lazy import lets a cycle pass unnoticed), "
        f"or allow them with a reason in ALLOWED_LAZY_IMPORTS: {unexpected}"
    )
    stale = sorted(set(ALLOWED_LAZY_IMPORTS) - set(found))
    assert not stale, f"no longer imported lazily, drop from ALLOWED_LAZY_IMPORTS: {stale}"


def test_the_config_is_never_imported_lazily() -> None:
    assert not [key for key in ALLOWED_LAZY_IMPORTS if key[1] == "inbox_daemon.config"]
    assert not [entry for entry in lazy_imports() if entry[1] == "inbox_daemon.config"]


def test_relative_and_plain_imports_are_resolved() -> None:
    tree = ast.parse("def f():\n    from ..config import Settings\n    import inbox_daemon.x\n")
    nodes = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    got = [t for n in nodes for t in imported(n, "inbox_daemon.channels.base", False)]
    assert got == ["inbox_daemon.config:Settings", "inbox_daemon.x:"]


def layer_modules() -> set[str]:
    """Every module the layers contract of pyproject.toml names (optional ones included)."""
    contracts = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]
    (layers,) = [c for c in contracts if c["type"] == "layers"]
    names = set()
    for layer in layers["layers"]:
        for entry in layer.replace(":", "|").split("|"):
            names.add(entry.strip().removeprefix("(").removesuffix(")"))
    return names


def test_every_top_level_module_is_in_a_layer() -> None:
    modules = {f"inbox_daemon.{m.name}" for m in pkgutil.iter_modules([str(PACKAGE)])}
    assert "inbox_daemon.config" in modules
    missing = sorted(modules - layer_modules())
    assert not missing, f"place these in the layers contract of pyproject.toml: {missing}"
