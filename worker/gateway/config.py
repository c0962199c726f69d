"""The gateway's configuration: the apps of ``socket_config`` and the ``gateway`` options.

:func:`parse_gateway_config` checks and converts what an app directory's config says; the
result, a :class:`GatewayConfig`, is what the gateway's rules (``rules.py``) and plugin read.
The wire format and the signatures it names are in ``wire.py``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .wire import MD5, MD5_REPLAY_MODES, REPLAY_ALLOW, SCHEMES

APP_KEYS = ("key", "key_env", "scheme", "handshake_sign", "md5_replay")
GATEWAY_KEYS = ("window_seconds", "disconnect_on_deny", "http_path", "http_max_body", "cors",
                "presence")


@dataclass(frozen=True)
class AppSpec:
    """One app allowed to use the gateway. The key never shows in repr()."""

    key: str = field(repr=False)
    scheme: str = MD5
    # When True the socket.io handshake itself must carry a valid signature in its auth.
    handshake_sign: bool = False
    # md5 only: "allow" (every use of a valid signature, as egg-socket.io clients expect),
    # "same_socket" (a signature is remembered with the socket that used it first; any other
    # socket or HTTP call presenting it within the window is refused) or "refuse" (a signature
    # is accepted once). hmac-sha256 always refuses replays (its nonce).
    md5_replay: str = REPLAY_ALLOW


@dataclass(frozen=True)
class GatewayConfig:
    """The gateway's settings: the apps (from ``socket_config``) and the ``gateway`` options."""

    apps: dict[str, AppSpec] = field(default_factory=dict)
    window_seconds: float = 300
    disconnect_on_deny: bool = True
    http_path: str = "/api/transportMessage"
    http_max_body: int = 65536
    # None: no CORS headers; "*": any origin; a list: exactly these origins.
    cors: str | list[str] | None = None
    # The connect / disconnect notices to exchange peers (presence.py) and what they keep.
    presence: bool = True

    @property
    def enabled(self) -> bool:
        """True when at least one app is configured (the plugin is on)."""
        return bool(self.apps)


def parse_gateway_config(
    socket_config: Mapping[str, Any] | None, gateway: Mapping[str, Any] | None = None
) -> GatewayConfig:
    """Check and convert the app config's ``socket_config`` and ``gateway`` sections.

    Raises ValueError whose message starts with the key path, e.g.
    ``socket_config.signatureApp.key: expected a non-empty string``. Messages name types,
    never values, in ``socket_config`` (a misplaced secret must not reach a log); a missing
    ``key_env`` variable is named, its value never.
    """
    apps: dict[str, AppSpec] = {}
    if socket_config is None:
        socket_config = {}
    if not isinstance(socket_config, Mapping):
        raise ValueError(
            f"socket_config: expected a dict of app name -> settings, got {_type(socket_config)}"
        )
    for name, settings in socket_config.items():
        apps[_app_name(name)] = _app_spec(name, settings)
    options = _gateway_options(gateway)
    return GatewayConfig(apps=apps, **options)


def _type(value: Any) -> str:
    return type(value).__name__


def _app_name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"socket_config: app names must be non-empty strings, got {_type(name)}")
    return name


def _app_spec(name: str, settings: Any) -> AppSpec:
    path = f"socket_config.{name}"
    if not isinstance(settings, Mapping):
        raise ValueError(
            f"{path}: expected a dict with 'key' or 'key_env', got {_type(settings)}"
        )
    for option in settings:
        if option not in APP_KEYS:
            shown = option if isinstance(option, str) else _type(option)
            raise ValueError(f"{path}.{shown}: unknown key (known: {', '.join(APP_KEYS)})")
    if ("key" in settings) == ("key_env" in settings):
        raise ValueError(f"{path}: expected exactly one of 'key' or 'key_env'")
    if "key" in settings:
        key = settings["key"]
        if not isinstance(key, str) or not key:
            raise ValueError(f"{path}.key: expected a non-empty string")
    else:
        variable = settings["key_env"]
        if not isinstance(variable, str) or not variable:
            raise ValueError(f"{path}.key_env: expected the name of an environment variable")
        key = os.environ.get(variable, "")
        if not key:
            raise ValueError(f"{path}.key_env: environment variable {variable} is not set or empty")
    scheme = settings.get("scheme", MD5)
    if scheme not in SCHEMES:
        raise ValueError(f"{path}.scheme: expected one of {', '.join(SCHEMES)}")
    handshake_sign = settings.get("handshake_sign", False)
    if not isinstance(handshake_sign, bool):
        raise ValueError(
            f"{path}.handshake_sign: expected True or False, got {_type(handshake_sign)}"
        )
    md5_replay = settings.get("md5_replay", REPLAY_ALLOW)
    if md5_replay not in MD5_REPLAY_MODES:
        raise ValueError(f"{path}.md5_replay: expected one of {', '.join(MD5_REPLAY_MODES)}")
    if scheme != MD5 and md5_replay != REPLAY_ALLOW:
        raise ValueError(f"{path}.md5_replay: only for the md5 scheme ({scheme} refuses "
                         "replays by its nonce)")
    return AppSpec(key=key, scheme=scheme, handshake_sign=handshake_sign, md5_replay=md5_replay)


def _gateway_options(gateway: Any) -> dict[str, Any]:
    if gateway is None:
        return {}
    if not isinstance(gateway, Mapping):
        raise ValueError(f"gateway: expected a dict, got {_type(gateway)}")
    for option in gateway:
        if option not in GATEWAY_KEYS:
            shown = option if isinstance(option, str) else repr(option)
            raise ValueError(f"gateway.{shown}: unknown key (known: {', '.join(GATEWAY_KEYS)})")
    options: dict[str, Any] = {}
    if "window_seconds" in gateway:
        window = gateway["window_seconds"]
        if not _is_number(window) or not 0 < window < math.inf:
            raise ValueError(f"gateway.window_seconds: expected a number above 0, got {window!r}")
        options["window_seconds"] = window
    for name in ("disconnect_on_deny", "presence"):
        if name in gateway:
            flag = gateway[name]
            if not isinstance(flag, bool):
                raise ValueError(f"gateway.{name}: expected True or False, got {flag!r}")
            options[name] = flag
    if "http_path" in gateway:
        http_path = gateway["http_path"]
        if not isinstance(http_path, str) or not http_path.startswith("/"):
            raise ValueError(
                f"gateway.http_path: expected a URL path starting with '/', got {http_path!r}"
            )
        options["http_path"] = http_path
    if "http_max_body" in gateway:
        limit = gateway["http_max_body"]
        if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
            raise ValueError(f"gateway.http_max_body: expected a number of bytes above 0, "
                             f"got {limit!r}")
        options["http_max_body"] = limit
    if "cors" in gateway:
        options["cors"] = _cors(gateway["cors"])
    return options


def _cors(value: Any) -> str | list[str] | None:
    # A single origin is accepted as a one-element list.
    if value is None:
        return None
    if value == "*":
        return "*"
    if isinstance(value, str) and value:
        return [value]
    if isinstance(value, list) and value and all(isinstance(o, str) and o for o in value):
        return list(value)
    raise ValueError(f"gateway.cors: expected None, '*' or a list of origins, got {value!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
