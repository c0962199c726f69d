"""The app framework in the style of egg-socket.io: an app directory served by a socketio.Server.

``Controller`` is the base of class-based controllers (apps import it as ``from sioctl import
Controller``; this path names the same class). The package imports its parts lazily:
the CLI reads an app's configuration through ``sioctl.worker.framework.config`` and should not
pay for (or be able to reach) the socket.io runtime while doing so.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Controller"]


def __getattr__(name: str) -> Any:
    if name == "Controller":
        from .controller import Controller

        return Controller
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
