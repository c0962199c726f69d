"""Print pip constraints that pin the libraries of the library contract to the lowest versions
pyproject.toml allows (``python-socketio==5.16.1``...), one a line.

scripts/test.sh installs them into ``.venv-lowest`` so that CI runs the contract tests on the
lowest allowed versions as well as on the newest (``.venv``). Only the libraries whose
internals sioctl relies on (worker/library_contract.py) are pinned; the others resolve as usual.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

PINNED = ("python-socketio", "python-engineio", "eventlet")


def lowest_pins(pyproject: str) -> list[str]:
    """``name==lower`` for each PINNED dependency of ``pyproject`` (its text); raises
    ValueError when one has no lower bound."""
    pins = []
    for name in PINNED:
        match = re.search(rf'"{re.escape(name)}\s*>=\s*([^",<\s]+)', pyproject)
        if match is None:
            raise ValueError(f"pyproject.toml gives no lower bound for {name}")
        pins.append(f"{name}=={match.group(1)}")
    return pins


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    try:
        print("\n".join(lowest_pins((root / "pyproject.toml").read_text())))
    except ValueError as exc:
        sys.exit(str(exc))
