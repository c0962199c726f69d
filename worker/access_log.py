"""The access log: gunicorn's Logger, fed by a thin WSGI middleware around the app."""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from gunicorn.config import Config
from gunicorn.glogging import Logger

from sioctl.cluster.settings import Settings
from sioctl.worker.calls import direct_call

WSGIApp = Callable[..., Iterable[bytes]]


class _Response:
    """What gunicorn's Logger.atoms() reads from a response: status, sent, headers."""

    def __init__(self) -> None:
        self.status: str = "-"
        self.headers: list[tuple[str, str]] = []
        self.sent = 0


class _Request:
    """What Logger.atoms() reads from a request: its headers, rebuilt from the environ."""

    def __init__(self, environ: dict[str, Any]) -> None:
        self.headers = [
            (key[5:].replace("_", "-"), value)
            for key, value in environ.items()
            if key.startswith("HTTP_") and isinstance(value, str)
        ]


def make_access_logger(settings: Settings) -> Logger | None:
    """gunicorn's Logger configured from the settings, or None when there is no access log."""
    if not settings.accesslog:
        return None
    cfg = Config()
    cfg.set("accesslog", settings.accesslog)
    cfg.set("access_log_format", settings.access_log_format)
    cfg.set("errorlog", settings.errorlog)
    cfg.set("loglevel", settings.loglevel)
    return Logger(cfg)


class AccessLogMiddleware:
    """Calls the app and writes one access log line per request once the response is done."""

    def __init__(self, app: WSGIApp, logger: Logger) -> None:
        self.app = direct_call(app)  # no C-level call per layer (worker/calls.py)
        self.logger = logger

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        started = time.monotonic()
        response = _Response()

        def recording_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            response.status = status
            response.headers = list(headers)
            return start_response(status, headers, exc_info)

        def log(environ: dict[str, Any]) -> None:
            if response.status == "-" and environ.get("HTTP_UPGRADE", "").lower() == "websocket":
                # eventlet's websocket writes its handshake itself, bypassing start_response.
                response.status = "101 Switching Protocols"
            environ.setdefault("RAW_URI", _raw_uri(environ))
            elapsed = datetime.timedelta(seconds=time.monotonic() - started)
            self.logger.access(response, _Request(environ), environ, elapsed)

        # eventlet.wsgi runs its posthooks after the whole response is written.
        posthooks = environ.get("eventlet.posthooks")
        result = self.app(environ, recording_start_response)
        if isinstance(result, list):
            response.sent = sum(len(chunk) for chunk in result)
            if posthooks is not None:
                posthooks.append((log, (), {}))
            return result
        return _CountingBody(result, response, log, environ, posthooks is None)


class _CountingBody:
    """An app's response iterable that counts the bytes it yields, and logs when closed."""

    def __init__(
        self,
        body: Iterable[bytes],
        response: _Response,
        log: Callable[[dict[str, Any]], None],
        environ: dict[str, Any],
        log_on_close: bool,
    ) -> None:
        self._body = body
        self._response = response
        self._log = log
        self._environ = environ
        self._log_on_close = log_on_close
        posthooks = environ.get("eventlet.posthooks")
        if posthooks is not None:
            posthooks.append((log, (), {}))

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._body:
            self._response.sent += len(chunk)
            yield chunk

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            close()
        if self._log_on_close:
            self._log(self._environ)


def _raw_uri(environ: dict[str, Any]) -> str:
    path = environ.get("RAW_PATH_INFO") or environ.get("PATH_INFO", "")
    query = environ.get("QUERY_STRING", "")
    return f"{path}?{query}" if query else path


def errors_logged(app: WSGIApp, logger: logging.Logger) -> WSGIApp:
    """``app`` with its exceptions logged (with traceback) before eventlet answers 500.

    eventlet.wsgi only reports app errors through its own request log, which is off.
    """

    call = direct_call(app)  # no C-level call per layer (worker/calls.py)

    def wrapper(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        try:
            return call(environ, start_response)
        except Exception:
            logger.exception(
                "error handling %s %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO")
            )
            raise

    return wrapper
