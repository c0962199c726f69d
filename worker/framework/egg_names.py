"""egg-socket.io's config names and units, read beside sioctl's own.

An app directory written for egg-socket.io names its settings as egg and engine.io do:
``socketConfig``, ``io.generateId``, ``io.namespace['/'].connectionMiddleware`` /
``packetMiddleware``, ``io.redis.auth_pass`` and engine.io's server options in ``io.init``
(``pingInterval``, ``pingTimeout`` in milliseconds, ``maxHttpBufferSize``, ``cors`` as the
``cors`` package's options object, socket.io 2's ``origins``, ...). :func:`canonical` rewrites
the values of one config file into sioctl's names and units before the files are merged, and
returns one info line per egg name it met, naming the key it became (the CLI prints them once).

Rules: one file giving both spellings of a key is an error naming both; a seconds key holding a
value that looks like milliseconds is an error with the hint; an engine.io option with no
counterpart here is ignored with an info line saying why, except ``allowRequest``, whose
refusals an app relies on (ignoring it would let in what the app meant to keep out).

Errors are ValueError with the whole message (``config/config_default.py: io.init: ...``);
:mod:`.config` turns them into its ConfigError. Imports neither eventlet nor socketio.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sioctl.cluster.setting_spec import millis_problem

TOP = {"socketConfig": "socket_config"}
IO = {"generateId": "generate_id"}
NAMESPACE = {
    "connectionMiddleware": "connection_middleware",
    "packetMiddleware": "packet_middleware",
}
REDIS = {"auth_pass": "password"}
# engine.io's server options (and socket.io's that egg passes along in the same object) that
# have a sioctl name of another spelling: (the sioctl key, whether engine.io counts in ms).
INIT = {
    "pingInterval": ("ping_interval", True),
    "pingTimeout": ("ping_timeout", True),
    "maxHttpBufferSize": ("max_http_buffer_size", False),
    "allowUpgrades": ("allow_upgrades", False),
    "httpCompression": ("http_compression", False),
    "allowEIO3": ("allow_eio3", False),
    # socket.io 2's allowed origins ("*:*" by default there).
    "origins": ("cors", False),
}
# Our keys in seconds, checked for values that look like milliseconds.
SECONDS = {"ping_interval": "pingInterval", "ping_timeout": "pingTimeout"}
# engine.io / socket.io options with no counterpart here: ignored, with why.
IGNORED = {
    "wsEngine": "websockets are served by python-engineio itself",
    "perMessageDeflate": "python-engineio does not compress websocket frames",
    "upgradeTimeout": "python-engineio has no upgrade timeout",
    "destroyUpgrade": "python-engineio has no upgrade timeout",
    "destroyUpgradeTimeout": "python-engineio has no upgrade timeout",
    "initialPacket": "python-engineio sends no initial packet",
    "addTrailingSlash": "both forms of the path are served",
    "handlePreflightRequest": "CORS preflight requests are answered from io.init.cors",
    "cookiePath": "give io.init.cookie as a dict with 'path'",
    "cookieHttpOnly": "give io.init.cookie as a dict with 'HttpOnly'",
    "serveClient": "sioctl does not serve the client bundle; serve it as a static file",
    "adapter": "the workers share rooms through sioctl's Redis manager (io.redis)",
    "parser": "the default Socket.IO parser is the only one",
    "connectTimeout": "use --connect-timeout (seconds; the same 45 s default)",
    "cleanupEmptyChildNamespaces": "sioctl has no dynamic namespaces",
}
REFUSED = {
    "allowRequest": "refuse handshakes in a connection middleware "
    "(io.namespace['/'].connection_middleware) instead",
}

Note = Callable[[str], None]


def canonical(values: dict[str, Any], label: str) -> tuple[dict[str, Any], list[str]]:
    """``values`` (one config file's keys) in sioctl's names and units, and the info lines.

    Raises ValueError (the message names ``label`` and the key) for both spellings of one
    key, a milliseconds-looking value under a seconds key, or an egg value we cannot read.
    """
    notes: list[str] = []
    out = _rename(values, TOP, label, "", notes.append)
    io = out.get("io")
    if isinstance(io, Mapping):
        io = out["io"] = _rename(io, IO, label, "io.", notes.append)
        if isinstance(io.get("init"), Mapping):
            io["init"] = _init(dict(io["init"]), label, notes.append)
        if isinstance(io.get("redis"), Mapping):
            io["redis"] = _rename(io["redis"], REDIS, label, "io.redis.", notes.append)
        if isinstance(io.get("namespace"), Mapping):
            io["namespace"] = {
                name: _rename(settings, NAMESPACE, label, f"io.namespace.{name}.", notes.append)
                if isinstance(settings, Mapping) else settings
                for name, settings in io["namespace"].items()
            }
    return out, notes


def _rename(
    values: Mapping[str, Any], names: Mapping[str, str], label: str, prefix: str, note: Note
) -> dict[str, Any]:
    out = dict(values)
    for egg, ours in names.items():
        if egg in out:
            _both(out, egg, ours, label, prefix)
            out[ours] = out.pop(egg)
            note(f"{label}: {prefix}{egg} is egg-socket.io's name; read as {prefix}{ours}")
    return out


def _both(values: Mapping[str, Any], egg: str, ours: str, label: str, prefix: str) -> None:
    if egg in values and ours in values:
        where = prefix.rstrip(".") or "(top level)"
        raise ValueError(f"{label}: {where}: both {egg} and {ours} are set; they are one "
                         f"setting, keep one")


def _init(init: dict[str, Any], label: str, note: Note) -> dict[str, Any]:
    where = f"{label}: io.init"
    for ours, egg in SECONDS.items():
        # Checked before renaming: a converted pingInterval is in seconds already.
        problem = millis_problem(init.get(ours), egg)
        if problem:
            raise ValueError(f"{where}.{ours}: {problem}")
    for name, why in REFUSED.items():
        if name in init:
            raise ValueError(f"{where}.{name}: not supported; {why}")
    for name, why in IGNORED.items():
        if name in init:
            del init[name]
            note(f"{where}.{name} (an engine.io option) is ignored: {why}")
    for egg, (ours, millis) in INIT.items():
        if egg not in init:
            continue
        _both(init, egg, ours, label, "io.init.")
        value = init.pop(egg)
        if millis:
            value = _seconds(value, f"{where}.{egg}")
            init[ours] = value
            note(f"{where}.{egg} is engine.io's name, in milliseconds; read as "
                 f"io.init.{ours} = {value:g} (seconds)")
            continue
        if egg == "origins":
            value = _origins(value, f"{where}.{egg}")
        elif isinstance(value, float) and value.is_integer():
            # JS writes sizes as 1e6, which Python reads as a float.
            value = int(value)
        init[ours] = value
        note(f"{where}.{egg} is engine.io's name; read as io.init.{ours}")
    if "connectionStateRecovery" in init:
        _both(init, "connectionStateRecovery", "connection_state_recovery", label, "io.init.")
        init["connection_state_recovery"] = _recovery(
            init.pop("connectionStateRecovery"), f"{where}.connectionStateRecovery")
        note(f"{where}.connectionStateRecovery is socket.io's name, in milliseconds; read as "
             f"io.init.connection_state_recovery = {init['connection_state_recovery']!r}")
    if isinstance(init.get("cors"), Mapping):
        init["cors"] = _cors_object(init["cors"], f"{where}.cors", note)
    if init.get("cookie") is False:
        # engine.io's "no cookie" (its default since engine.io 4); python-engineio's is None.
        init["cookie"] = None
    return init


def _recovery(value: Any, where: str) -> dict[str, Any]:
    """socket.io's ``connectionStateRecovery`` object (``maxDisconnectionDuration`` in ms,
    2 minutes by default; ``skipMiddlewares``, true by default) in sioctl's names."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected an object {{maxDisconnectionDuration, "
                         f"skipMiddlewares}}, got {value!r}")
    unknown = set(value) - {"maxDisconnectionDuration", "skipMiddlewares"}
    if unknown:
        raise ValueError(f"{where}: unknown option(s) {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {"max_disconnection_duration": _seconds(
        value.get("maxDisconnectionDuration", 120_000), f"{where}.maxDisconnectionDuration")}
    if "skipMiddlewares" in value:
        out["skip_middlewares"] = value["skipMiddlewares"]
    return out


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{where}: expected a number of milliseconds above 0, got {value!r}")
    seconds = value / 1000
    return int(seconds) if seconds == int(seconds) else seconds


def _origins(value: Any, where: str) -> Any:
    """socket.io 2's ``origins`` as an io.init.cors value: ``'*:*'`` (its default) is every
    origin; full origins (``https://a.example:443``) are taken as they are."""
    items = value if isinstance(value, list) else [value]
    if any(item in ("*:*", "*") for item in items):
        return "*"
    if not all(isinstance(item, str) and "://" in item and "*" not in item for item in items):
        raise ValueError(f"{where}: only '*:*' or full origins ('https://host:port') are "
                         f"understood, got {value!r}; write io.init.cors as a list of origins")
    return value


def _cors_object(value: Mapping[str, Any], where: str, note: Note) -> Any:
    """engine.io 4's ``cors`` (the options of the ``cors`` package) as an io.init.cors value:
    its ``origin``; the package's other options are python-engineio's defaults."""
    origin = value.get("origin", "*")
    if origin is True:
        origin = "*"
    if not isinstance(origin, (str, list)) and origin is not False:
        raise ValueError(f"{where}.origin: expected '*', true, an origin or a list of origins, "
                         f"got {type(origin).__name__}")
    others = sorted(set(value) - {"origin"})
    note(f"{where} is engine.io's options object; its origin read as io.init.cors = {origin!r}"
         + (f" ({', '.join(others)} left to python-engineio's defaults)" if others else ""))
    return origin
