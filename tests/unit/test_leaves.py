"""The leaves stay leaves: every top-level module of the package is in a layer.

import-linter (``lint-imports``, the contracts in pyproject.toml) checks the imports between
layers, lazy ones included, but only between the modules the layers name; its ``exhaustive``
option needs ``containers``, so this test checks that the layers contract names every one.
"""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "inbox_daemon"
PYPROJECT = ROOT / "pyproject.toml"


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
