"""redis-py's two reply parsers, for the tests that must hold with either: its own (pure
Python) and hiredis, which redis-py picks process-wide whenever ``hiredis`` is importable
(``sioctl[hiredis]``, or an app that installs it). A child interpreter gets the one a test
names: for ``"redis-py"`` the child's ``hiredis`` import is made to fail before redis-py looks
for it (an entry of None in ``sys.modules``, Python's own way to make an import fail), so the
test does not depend on which of the two this venv has; ``"hiredis"`` is skipped where it is
not installed."""

from __future__ import annotations

import importlib.util

import pytest

PARSERS = ("redis-py", "hiredis")


def hiredis_installed() -> bool:
    """Whether this interpreter can import hiredis."""
    return importlib.util.find_spec("hiredis") is not None


def child_prelude(parser: str) -> str:
    """Python source that a child interpreter runs first, before it imports redis-py, to read
    replies with ``parser`` (skips the calling test when hiredis is asked for and missing)."""
    if parser == "hiredis":
        if not hiredis_installed():
            pytest.skip("hiredis is not installed (pip install -e '.[hiredis]')")
        return "import hiredis\n"
    assert parser == "redis-py", parser
    return "import sys\nsys.modules['hiredis'] = None\n"
