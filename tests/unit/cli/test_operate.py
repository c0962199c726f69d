"""``sioctl scale COUNT``'s count (cli/operate.py): N, +K or -K."""

from __future__ import annotations

import click
import pytest

from sioctl.cli.operate import target_count


def test_absolute_and_relative_counts() -> None:
    assert [target_count(c, 3) for c in ("5", "+2", "-1", "0")] == [5, 5, 2, 0]


@pytest.mark.parametrize("count", ["abc", "", "+", "2.5", "--1"])
def test_a_malformed_count_is_a_usage_error(count: str) -> None:
    with pytest.raises(click.BadParameter):
        target_count(count, 3)
