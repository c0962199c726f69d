"""Reading sioctl's Prometheus metrics page in the tests."""

from __future__ import annotations

import re


def sample(text: str, name: str, slot: int | None = None) -> float | None:
    """The value of metric ``name`` (for ``slot``) in a Prometheus text page."""
    label = "" if slot is None else f'{{slot="{slot}"}}'
    match = re.search(rf"^{re.escape(name + label)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else None
