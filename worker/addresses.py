"""Client addresses as the master sends them in ``conn`` messages."""

from __future__ import annotations

from typing import Any

Address = tuple[str, int]


def parse_address(value: Any) -> Address:
    """(host, port) from a ``conn`` message's ``addr``; raises ValueError if malformed."""
    if (
        isinstance(value, (list, tuple))
        and len(value) >= 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    ):
        return value[0], value[1]
    raise ValueError(f"bad addr {value!r}")
