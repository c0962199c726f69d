"""The package stays in small modules of short functions (issue 14: no module over ~450 lines,
no function over ~80), so that a second engine finds one job per file to put a shell around."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.paths import REPO_ROOT

PACKAGE_DIRS = ("sioctl", "cluster", "worker", "cli")
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80


def package_modules() -> list[Path]:
    return sorted(path for folder in PACKAGE_DIRS for path in (REPO_ROOT / folder).rglob("*.py"))


def test_the_package_is_found() -> None:
    names = {path.relative_to(REPO_ROOT).as_posix() for path in package_modules()}
    assert {"cluster/arbiter.py", "worker/main.py", "cli/main.py", "sioctl/__init__.py"} <= names


def test_no_module_is_over_the_bound() -> None:
    long = {
        path.relative_to(REPO_ROOT).as_posix(): lines
        for path in package_modules()
        if (lines := path.read_text().count("\n")) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them by job): {long}"


def test_no_function_is_over_the_bound() -> None:
    long: dict[str, int] = {}
    for path in package_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(REPO_ROOT).as_posix()}:{node.name}"] = lines
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"
