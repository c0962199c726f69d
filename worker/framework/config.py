"""An app directory's configuration: config/config_default.py deep-merged with config_{env}.py.

A config file is a Python module; its public module-level names are the config keys. Every
mistake (an unknown key, a wrong type, a file that does not import) is a :class:`ConfigError`
whose message names the file and the key, e.g.
``config/config_prod.py: io.init.ping_interval: expected a number, got 'fast'``.

This module imports neither eventlet nor socketio: the CLI reads the config too (for
``io.redis``) and must stay free of eventlet.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from sioctl.cluster.redis_urls import SCHEMES_TEXT, check_url

from . import egg_names

CONFIG_DIR = "config"
DEFAULT_FILE = "config_default.py"
ROUTER_FILE = os.path.join("app", "router.py")

TOP_LEVEL_KEYS = {"keys", "io", "session", "socket_config", "gateway", "custom"}
IO_KEYS = {"init", "namespace", "redis", "generate_id"}
INIT_KEYS = {
    "ping_interval",
    "ping_timeout",
    "max_http_buffer_size",
    "cors",
    "transports",
    "path",
    "allow_upgrades",
    "http_compression",
    "cookie",
    # Socket.IO v2 clients too (egg-socket.io's clients); read by the CLI (--allow-eio3).
    "allow_eio3",
    # Compress websocket frames for clients that offer it; read by the CLI
    # (--ws-per-message-deflate). engine.io's options object counts as on.
    "per_message_deflate",
    # {"max_disconnection_duration": s, "skip_middlewares": bool}; the duration is read by the
    # CLI (--connection-state-recovery), skip_middlewares by the framework.
    "connection_state_recovery",
}
RECOVERY_KEYS = {"max_disconnection_duration", "skip_middlewares"}
# socket.io's defaults: two minutes, and the connection middleware skipped on recovery.
RECOVERY_DEFAULTS = {"max_disconnection_duration": 120.0, "skip_middlewares": True}
NAMESPACE_KEYS = {"connection_middleware", "packet_middleware"}
REDIS_KEYS = {"host", "port", "password", "db", "username", "path"}
SESSION_KEYS = {"key", "store", "max_age", "redis_prefix"}
TRANSPORTS = {"polling", "websocket"}


class ConfigError(Exception):
    """A configuration mistake; the message names the file and the key."""


@dataclass
class NamespaceConfig:
    connection_middleware: list[str] = field(default_factory=list)
    packet_middleware: list[str] = field(default_factory=list)


@dataclass
class AppConfig:
    """The merged configuration of an app directory."""

    app_dir: str
    env: str
    keys: list[str] = field(default_factory=list)
    init: dict[str, Any] = field(default_factory=dict)
    namespaces: dict[str, NamespaceConfig] = field(
        default_factory=lambda: {"/": NamespaceConfig()}
    )
    redis_url: str | None = None
    generate_id: Callable[[dict[str, Any]], str] | None = None
    session_key: str = "SIOCTL_SESS"
    session_store: str = "cookie"
    session_max_age: float | None = None
    session_redis_prefix: str = "sioctl:sess:"
    socket_config: dict[str, Any] = field(default_factory=dict)
    gateway: dict[str, Any] = field(default_factory=dict)
    custom: dict[str, Any] = field(default_factory=dict)
    # Which file gave each dotted key its final value, for messages raised after merging.
    origin: dict[str, str] = field(default_factory=dict)
    # Info lines for the CLI to print once: egg-socket.io names read as ours, engine.io options
    # ignored, a missing config_{env}.py.
    notes: list[str] = field(default_factory=list)

    def where(self, key: str) -> str:
        """``config/config_x.py: key`` for messages about ``key`` (a dotted path)."""
        parts = key.split(".")
        while parts:
            found = self.origin.get(".".join(parts))
            if found:
                return f"{found}: {key}"
            parts.pop()
        return f"{CONFIG_DIR}/{DEFAULT_FILE}: {key}"


def is_app_dir(path: str) -> bool:
    """True when ``path`` is a directory laid out as an app (config/ or app/router.py)."""
    return os.path.isfile(os.path.join(path, CONFIG_DIR, DEFAULT_FILE)) or os.path.isfile(
        os.path.join(path, ROUTER_FILE)
    )


# The envs `sioctl start` and `sioctl dev` use when none is named: an app without their file
# runs on config_default.py, as egg does, without a note at every start.
UNNAMED_ENVS = ("prod", "local")


def load_config(app_dir: str, env: str | None) -> AppConfig:
    """Read, merge and check the app's configuration for ``env``; raises ConfigError."""
    env = env or "prod"
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    notes: list[str] = []
    for name in dict.fromkeys((DEFAULT_FILE, f"config_{env}.py")):  # --env default: once
        path = os.path.join(app_dir, CONFIG_DIR, name)
        label = f"{CONFIG_DIR}/{name}"
        if not os.path.isfile(path):
            if name != DEFAULT_FILE and env not in UNNAMED_ENVS \
                    and os.path.isdir(os.path.join(app_dir, CONFIG_DIR)):
                # egg runs the defaults silently; a mistyped --env should not go unnoticed.
                notes.append(f"{label} does not exist: env {env!r} runs on "
                             f"{CONFIG_DIR}/{DEFAULT_FILE} alone")
            continue
        try:
            values, file_notes = egg_names.canonical(_read_file(path, label), label)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        notes.extend(file_notes)
        _deep_merge(merged, values, origin, label, "")
    config = AppConfig(app_dir=os.path.abspath(app_dir), env=env, origin=origin, notes=notes)
    _apply(config, merged)
    return config


def _read_file(path: str, label: str) -> dict[str, Any]:
    """The public module-level names a config file defines (not modules, not imports)."""
    module_name = "sioctl_config_" + re.sub(r"\W", "_", os.path.abspath(path))
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{label}: cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ConfigError(f"{label}: {type(exc).__name__}: {exc}") from exc
    values = {}
    for name, value in vars(module).items():
        if name.startswith("_") or isinstance(value, types.ModuleType):
            continue
        # Functions and classes imported from elsewhere are tools, not settings.
        if isinstance(value, (types.FunctionType, type)) and value.__module__ != module_name:
            continue
        if name not in TOP_LEVEL_KEYS and name not in egg_names.TOP:
            known = ", ".join(sorted(TOP_LEVEL_KEYS))
            raise ConfigError(
                f"{label}: {name}: unknown config key (known: {known}; "
                "put the app's own settings under 'custom')"
            )
        values[name] = value
    return values


def _deep_merge(
    into: dict[str, Any], values: Mapping[str, Any], origin: dict[str, str], label: str, prefix: str
) -> None:
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        origin[dotted] = label
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value, origin, label, f"{dotted}.")
        else:
            into[key] = copy.deepcopy(value) if isinstance(value, (dict, list)) else value


def _check_keys(config: AppConfig, section: str, value: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{config.where(section)}: expected a dict, got {_kind(value)}")
    for key in value:
        if key not in allowed:
            raise ConfigError(
                f"{config.where(f'{section}.{key}')}: unknown config key "
                f"(known: {', '.join(sorted(allowed))})"
            )
    return dict(value)


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {value!r}" if not callable(value) else type(value).__name__


def _expect(config: AppConfig, key: str, value: Any, types_: tuple[type, ...], what: str) -> Any:
    # bool is an int; a flag where a number belongs is a mistake.
    if not isinstance(value, types_) or (isinstance(value, bool) and bool not in types_):
        raise ConfigError(f"{config.where(key)}: expected {what}, got {_kind(value)}")
    return value


def _apply(config: AppConfig, merged: dict[str, Any]) -> None:
    if "keys" in merged:
        keys = merged["keys"]
        if isinstance(keys, str):
            keys = [k.strip() for k in keys.split(",") if k.strip()]
        if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
            raise ConfigError(
                f"{config.where('keys')}: expected a string or a list of non-empty strings"
            )
        config.keys = keys
    io = _check_keys(config, "io", merged.get("io", {}), IO_KEYS)
    _apply_init(config, io.get("init", {}))
    _apply_namespaces(config, io.get("namespace"))
    if io.get("redis") is not None:
        config.redis_url = redis_url(config, io["redis"])
    if io.get("generate_id") is not None:
        if not callable(io["generate_id"]):
            raise ConfigError(f"{config.where('io.generate_id')}: expected a callable(environ) "
                              f"-> str, got {_kind(io['generate_id'])}")
        config.generate_id = io["generate_id"]
    _apply_session(config, merged.get("session", {}))
    if "socket_config" in merged:
        config.socket_config = _expect(
            config, "socket_config", merged["socket_config"], (dict,), "a dict"
        )
    if "gateway" in merged:
        config.gateway = _expect(config, "gateway", merged["gateway"], (dict,), "a dict")
    if "custom" in merged:
        config.custom = _expect(config, "custom", merged["custom"], (dict,), "a dict")


def _apply_init(config: AppConfig, value: Any) -> None:
    init = _check_keys(config, "io.init", value, INIT_KEYS)
    number = (int, float)
    for key in ("ping_interval", "ping_timeout"):
        if key in init:
            seconds = _expect(config, f"io.init.{key}", init[key], number, "a number of seconds")
            if seconds <= 0:
                raise ConfigError(f"{config.where(f'io.init.{key}')}: must be above 0")
    if "max_http_buffer_size" in init:
        _expect(config, "io.init.max_http_buffer_size", init["max_http_buffer_size"], (int,),
                "a number of bytes")
    if "cors" in init:
        _expect(config, "io.init.cors", init["cors"], (str, list, bool), "'*', an origin, a "
                "list of origins or a bool")
    if "transports" in init:
        transports = _expect(config, "io.init.transports", init["transports"], (list,),
                             "a list of 'polling' and/or 'websocket'")
        if not transports or not set(transports) <= TRANSPORTS:
            raise ConfigError(
                f"{config.where('io.init.transports')}: expected a list of 'polling' and/or "
                f"'websocket', got {transports!r}"
            )
    if "path" in init:
        path = _expect(config, "io.init.path", init["path"], (str,), "a URL path")
        init["path"] = path.strip("/") or "socket.io"
    if isinstance(init.get("per_message_deflate"), dict):
        init["per_message_deflate"] = True  # engine.io's {threshold: ...}: zlib's defaults here
    for key in ("allow_upgrades", "http_compression", "allow_eio3", "per_message_deflate"):
        if key in init:
            _expect(config, f"io.init.{key}", init[key], (bool,), "True or False")
    if "cookie" in init and init["cookie"] is not None:
        _expect(config, "io.init.cookie", init["cookie"], (str, dict), "a cookie name or dict")
    if init.get("connection_state_recovery") is not None:
        init["connection_state_recovery"] = _recovery(config, init["connection_state_recovery"])
    config.init = init


def _recovery(config: AppConfig, value: Any) -> dict[str, Any]:
    """io.init.connection_state_recovery with socket.io's defaults filled in (True: all
    defaults; False: off)."""
    key = "io.init.connection_state_recovery"
    if value is True or value == {}:
        return dict(RECOVERY_DEFAULTS)
    if value is False:
        return {**RECOVERY_DEFAULTS, "max_disconnection_duration": 0}
    recovery = {**RECOVERY_DEFAULTS, **_check_keys(config, key, value, RECOVERY_KEYS)}
    seconds = _expect(config, f"{key}.max_disconnection_duration",
                      recovery["max_disconnection_duration"], (int, float), "a number of seconds")
    if seconds < 0:
        raise ConfigError(f"{config.where(f'{key}.max_disconnection_duration')}: must be 0 "
                          "(off) or more")
    _expect(config, f"{key}.skip_middlewares", recovery["skip_middlewares"], (bool,),
            "True or False")
    return recovery


def _apply_namespaces(config: AppConfig, value: Any) -> None:
    if value is None:
        return
    _expect(config, "io.namespace", value, (dict,), "a dict of namespace -> settings")
    namespaces: dict[str, NamespaceConfig] = {}
    for name, settings in value.items():
        key = f"io.namespace.{name}"
        if not isinstance(name, str) or not name.startswith("/"):
            raise ConfigError(f"{config.where('io.namespace')}: namespace {name!r} must start "
                              "with '/'")
        settings = _check_keys(config, key, settings or {}, NAMESPACE_KEYS)
        lists = {}
        for kind in ("connection_middleware", "packet_middleware"):
            names = settings.get(kind, [])
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ConfigError(
                    f"{config.where(f'{key}.{kind}')}: expected a list of middleware names, "
                    f"got {_kind(names)}"
                )
            lists[kind] = list(names)
        namespaces[name] = NamespaceConfig(**lists)
    config.namespaces = namespaces or {"/": NamespaceConfig()}


def _apply_session(config: AppConfig, value: Any) -> None:
    session = _check_keys(config, "session", value, SESSION_KEYS)
    if "key" in session:
        config.session_key = _expect(config, "session.key", session["key"], (str,),
                                     "a cookie name")
    if "store" in session:
        store = session["store"]
        if store not in ("cookie", "redis"):
            raise ConfigError(f"{config.where('session.store')}: expected 'cookie' or 'redis', "
                              f"got {store!r}")
        config.session_store = store
    if "max_age" in session and session["max_age"] is not None:
        config.session_max_age = float(
            _expect(config, "session.max_age", session["max_age"], (int, float), "seconds")
        )
    if "redis_prefix" in session:
        config.session_redis_prefix = _expect(
            config, "session.redis_prefix", session["redis_prefix"], (str,), "a key prefix"
        )


def redis_url(config: AppConfig, value: Any) -> str:
    """``io.redis`` as a URL: given as one, or as host/port/password/db (or path) parts."""
    if isinstance(value, str):
        if check_url(value) is not None:
            raise ConfigError(f"{config.where('io.redis')}: expected a Redis URL "
                              f"({SCHEMES_TEXT})")
        return value
    parts = _check_keys(config, "io.redis", value, REDIS_KEYS)
    auth = ""
    if parts.get("password") is not None:
        user = quote(str(parts.get("username") or ""), safe="")
        auth = f"{user}:{quote(str(parts['password']), safe='')}@"
    db = parts.get("db", 0)
    _expect(config, "io.redis.db", db, (int,), "a database number")
    if parts.get("path"):
        return f"unix://{auth}{parts['path']}?db={db}"
    port = _expect(config, "io.redis.port", parts.get("port", 6379), (int,), "a port number")
    host = str(parts.get("host", "127.0.0.1"))
    if ":" in host:
        host = f"[{host}]"
    return f"redis://{auth}{host}:{port}/{db}"
