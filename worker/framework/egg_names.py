"""egg-socket.io's config names and units, read beside sioctl's own.

An app directory written for egg-socket.io names its settings as egg and engine.io do:
``socketConfig``, ``io.generateId``, ``io.namespace['/'].connectionMiddleware`` /
``packetMiddleware``, ``io.redis.auth_pass`` and engine.io's server options in ``io.init``
(``pingInterval``, ``pingTimeout`` in milliseconds, ``maxHttpBufferSize``, ``cors`` as the
``cors`` package's options object, socket.io 2's ``origins``, ...) and egg-session's ``session``
(``maxAge`` in milliseconds, cookie options sioctl fixes). :func:`canonical` rewrites
the values of one config file into sioctl's names and units before the files are merged, and
returns one info line per egg name it met, naming the key it became (the CLI prints them once).

Rules: one file giving both spellings of a key is an error naming both; a seconds key holding a
value that looks like milliseconds is an error with the hint; an engine.io option with no
counterpart here is ignored with an info line saying why, except ``allowRequest``, whose
refusals an app relies on (ignoring it would let in what the app meant to keep out).

egg-session's options either mean something here (``maxAge``, ms -> ``max_age`` s; ``key`` is
the same name) or match what sioctl's cookies always are (``httpOnly: true``, ``signed: true``,
``sameSite: 'lax'``, ``encrypt: false``, ``encrypt: true`` with the Redis store): those are
read with an info line. Anything else is refused with why: a session cookie that differs from
what the app asked for (not encrypted, readable by scripts, renewed or not) is not a detail to
drop.

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
    "perMessageDeflate": ("per_message_deflate", False),
    # socket.io 2's allowed origins ("*:*" by default there).
    "origins": ("cors", False),
}
# Our keys in seconds, checked for values that look like milliseconds.
SECONDS = {"ping_interval": "pingInterval", "ping_timeout": "pingTimeout"}
# engine.io / socket.io options with no counterpart here: ignored, with why.
IGNORED = {
    "wsEngine": "websockets are served by python-engineio itself",
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
# egg-session (koa-session) options that sioctl's session cookies fix: the one value accepted
# (compared lowercased for strings) and what the cookie always is.
SESSION_FIXED = {
    "httpOnly": (True, "sioctl's session cookies are always HttpOnly"),
    "signed": (True, "sioctl's session cookies are always signed"),
    "sameSite": ("lax", "sioctl's session cookies are always SameSite=Lax"),
    "logValue": (False, "sioctl never logs session values"),
}
# egg-session options with no meaning for sioctl's sessions: refused, saying why.
SESSION_REFUSED = {
    "renew": "sioctl never re-issues a session cookie: the HTTP view that sets it decides when",
    "rolling": "sioctl never re-issues a session cookie: the HTTP view that sets it decides "
    "when",
    "autoCommit": "a socket.io connection cannot set cookies; the Redis store writes on "
    "ctx.session.save()",
    "overwrite": "the HTTP view that sets the cookie writes one Set-Cookie header",
    "secure": "pass secure=True to session_cookie_header() / new_redis_session_cookie() in "
    "the view that sets the cookie",
    "domain": "the cookie is set by an HTTP view of the app, for its own host",
    "path": "pass path= to session_cookie_header() / new_redis_session_cookie()",
    "genid": "Redis session ids are random (secrets.token_urlsafe)",
    "prefix": "use session.redis_prefix for the Redis keys",
    "externalKey": "the session is read from the handshake's cookie only",
    "ContextStore": "use session.store = 'redis'",
    "valid": "check the session in a connection middleware",
    "beforeSave": "change ctx.session before ctx.session.save()",
    "encode": "sioctl's cookie format is fixed (signed base64url JSON)",
    "decode": "sioctl's cookie format is fixed (signed base64url JSON)",
}

# A session.max_age (seconds) this large, over a year and a half, is egg's maxAge in
# milliseconds (its default, a day, is 86400000) copied under our name; a year in seconds
# (31536000) is still read as seconds.
SESSION_MILLIS_FROM = 50_000_000

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
    if isinstance(out.get("session"), Mapping):
        out["session"] = _session(dict(out["session"]), label, notes.append)
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


def _session(session: dict[str, Any], label: str, note: Note) -> dict[str, Any]:
    """egg-session's ``config.session`` in sioctl's names (see the module's docstring)."""
    where = f"{label}: session"
    for name, why in SESSION_REFUSED.items():
        if name in session:
            raise ValueError(f"{where}.{name}: egg-session's option has no meaning here: {why}")
    for name, (accepted, why) in SESSION_FIXED.items():
        if name in session:
            value = session.pop(name)
            if (value.lower() if isinstance(value, str) else value) != accepted:
                raise ValueError(f"{where}.{name}: {value!r} is not supported: {why}")
            note(f"{where}.{name} is egg-session's option; {value!r} is what sioctl does: {why}")
    if "encrypt" in session:
        _encrypt(session, where, note)
    if "maxAge" in session:
        _both(session, "maxAge", "max_age", label, "session.")
        value = session.pop("maxAge")
        if value == "session":
            session["max_age"] = None
            note(f"{where}.maxAge is egg-session's name; 'session' (a cookie the browser drops "
                 f"when it closes) read as session.max_age = None")
        else:
            session["max_age"] = _seconds(value, f"{where}.maxAge")
            note(f"{where}.maxAge is egg-session's name, in milliseconds; read as "
                 f"session.max_age = {session['max_age']:g} (seconds)")
    problem = millis_problem(session.get("max_age"), "maxAge", SESSION_MILLIS_FROM)
    if problem:
        raise ValueError(f"{where}.max_age: {problem}")
    return session


def _encrypt(session: dict[str, Any], where: str, note: Note) -> None:
    """egg encrypts its session cookie; sioctl signs it. Without encryption the browser can
    read a cookie session's data, so ``encrypt: true`` is only read where the data never
    travels: the Redis store, whose cookie carries a signed id."""
    value = session.pop("encrypt")
    if value is True and session.get("store") != "redis":
        raise ValueError(
            f"{where}.encrypt: sioctl's cookie sessions are signed, not encrypted (the browser "
            f"can read their data); set session.store = 'redis' to keep the data on the "
            f"server, or encrypt = False if the data may be read")
    if value not in (True, False):
        raise ValueError(f"{where}.encrypt: expected True or False, got {value!r}")
    note(f"{where}.encrypt is egg-session's option; {value!r} read as it is: the "
         + ("Redis store's cookie carries only a signed id" if value
            else "cookie is signed, its data readable"))


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
