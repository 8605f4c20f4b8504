"""The floors of docs/ARCHITECTURE.md hold: import-linter's contracts (pyproject.toml) pass, they
do fail on an arrow that runs back up, every module is under the independence contract, app/ names
no module, and no two top-level packages import each other."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "cityledger"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def contracts() -> dict[str, dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {contract["id"]: contract for contract in config["tool"]["importlinter"]["contracts"]}


def lint_imports(*args: str) -> subprocess.CompletedProcess:
    # --no-cache: a cached graph misses packages that just gained an __init__.py
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_lint_imports_keeps_every_contract():
    result = lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_lint_imports_fails_on_an_upward_import(tmp_path):
    # modules import core everywhere, so core drawn above modules must be reported broken.
    config = tmp_path / "upside-down.toml"
    config.write_text('[tool.importlinter]\nroot_package = "cityledger"\n\n'
                      '[[tool.importlinter.contracts]]\nname = "upside down"\ntype = "layers"\n'
                      'layers = ["cityledger.core", "cityledger.modules"]\n')
    result = lint_imports("--config", str(config))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "upside down BROKEN" in result.stdout
    assert "cityledger.modules." in result.stdout and "-> cityledger.core." in result.stdout


def test_every_module_is_under_the_independence_contract():
    listed = set(contracts()["modules"]["modules"])
    present = {f"cityledger.modules.{path.parent.name}" for path in (PACKAGE / "modules").glob("*/__init__.py")}
    assert listed == present


def test_every_package_folder_has_an_init():
    # import-linter does not see into a folder without __init__.py, so its imports would go unchecked.
    missing = [str(folder.relative_to(ROOT)) for folder in PACKAGE.rglob("*")
               if folder.is_dir() and folder.name != "__pycache__" and any(folder.glob("*.py"))
               and not (folder / "__init__.py").exists()]
    assert missing == []


def test_app_names_no_concrete_module():
    # app/ reaches modules only through modules/base.py's Module and its hooks; node/ picks the modules.
    graph = grimp.build_graph("cityledger", cache_dir=None)
    reached = {imported for importer in graph.find_descendants("cityledger.app")
               for imported in graph.find_modules_directly_imported_by(importer)
               if imported.startswith("cityledger.modules")}
    assert reached == {"cityledger.modules.base"}


def test_no_import_cycle_between_top_level_packages():
    graph = grimp.build_graph("cityledger", cache_dir=None)
    for expression in contracts()["floors"].get("ignore_imports", []):
        importer, imported = (part.strip() for part in expression.split("->"))
        graph.remove_import(importer=importer, imported=imported)
    arrows: dict[str, set[str]] = {}
    for importer in graph.modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            low, high = importer.split(".")[1:2], imported.split(".")[1:2]
            if low and high and low != high:
                arrows.setdefault(low[0], set()).add(high[0])
    cycles = [(a, b) for a, targets in arrows.items() for b in targets
              if graph_reaches(arrows, b, a)]
    assert cycles == []


def graph_reaches(arrows: dict[str, set[str]], start: str, goal: str) -> bool:
    """True if following arrows from start arrives at goal."""
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            todo.extend(arrows.get(node, ()))
    return False
