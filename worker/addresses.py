"""The master's ``conn`` messages, checked for either engine's channel reader: the client
address they carry, the one fd, what to log when one is malformed."""

from __future__ import annotations

import os
from typing import Any

from sioctl.cluster import channel as master_channel

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


def connection_message(data: bytes, fds: list[int], truncated: bool) -> tuple[int, Address]:
    """The fd and client address of the ``conn`` message ``data`` that arrived with ``fds``;
    raises ValueError (KeyError, UnicodeDecodeError) saying what is wrong with it — the caller
    then closes ``fds`` (:func:`close_fds`) and logs :func:`first_line` of the error."""
    if truncated:
        raise ValueError("message too long or with too many fds")
    message = master_channel.decode(data)
    if message["t"] != master_channel.CONN:
        raise ValueError(f"unexpected message type {message['t']!r}")
    if len(fds) != 1:
        raise ValueError(f"conn message with {len(fds)} fds instead of 1")
    return fds[0], parse_address(message.get("addr"))


def close_fds(fds: list[int]) -> None:
    """Close descriptors nobody will serve (one already closed is fine)."""
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def first_line(exc: BaseException) -> str:
    """An error as one log line: its message's first line, or its type."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
