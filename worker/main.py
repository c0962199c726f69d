"""The worker process: load the app, take connections, serve them, drain on SIGTERM.

Run as ``python -m sioctl.worker`` (``__main__`` monkey-patches first), either in a cluster
(``--channel-fd FD --slot N``: connections arrive from the master over the channel) or
standalone (``--listen HOST:PORT``: the worker binds and accepts itself, for ``sioctl dev``).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

import eventlet
import eventlet.hubs
import eventlet.queue
import eventlet.websocket
from eventlet.patcher import original

from sioctl.cluster import channel as master_channel
from sioctl.cluster.settings import Settings, parse_bind
from sioctl.worker import access_log, app_loader, drain, memory, protocol, redis_setup, tls, ws_mask
from sioctl.worker.boot import (
    claims_owner,
    exit_now,
    name_process,
    parse_args,
    prepare_environment,
    quiet_library_handlers,
    read_settings,
    reopen_logs,
    report_boot_error,
    setup_logging,
    unforeseen,
)
from sioctl.worker.errors import BootError
from sioctl.worker.fd_listener import Channel, accept_connections, receive_connections
from sioctl.worker.framework.application import load_app_dir
from sioctl.worker.gate import DrainGate
from sioctl.worker.gateway.mount import gateway_plugin
from sioctl.worker.http_server import HttpServer
from sioctl.worker.protocol.core import binary_check, json_codec, write_stall
from sioctl.worker.signal_pipe import signal_pipe, wait_for_signal

HEARTBEAT_INTERVAL = master_channel.HEARTBEAT_INTERVAL
# The plugins an app directory's config may turn on (the gateway: socket_config).
PLUGINS = (gateway_plugin,)


def load(settings: Settings, logger: logging.Logger) -> tuple[app_loader.LoadedApp, str]:
    """Load and prepare the app: (what to serve, the manager's description for the log).
    Every engine.io server in it gets the protocol rules; its socketio.Server, if any, the
    Socket.IO rules and sioctl's manager."""
    prepare_environment(settings)
    if os.path.isabs(settings.app) and os.path.isdir(settings.app):
        owner = claims_owner(settings, socket.gethostname())
        app = load_app_dir(settings.app, settings.env, settings.redis_url, owner,
                           settings.redis_channel, plugins=PLUGINS)
        loaded = app_loader.LoadedApp(app.wsgi_app, app.sio)
    else:
        loaded = app_loader.load_app(settings.app)
    if loaded.server is not None:
        protocol.install(loaded.server, settings.connect_timeout, settings.allow_eio3)
    for eio in loaded.engines:
        protocol.install_engine(eio, settings.allow_eio3)  # again on the server's: a no-op
    quiet_library_handlers()
    if loaded.server is None:
        return loaded, "Engine.IO only, no manager"
    described = redis_setup.install_manager(
        loaded.server, settings.redis_url, settings.redis_channel, logger,
        settings.redis_transport, settings.redis_stream_maxlen,
        settings.connection_state_recovery,
    )
    return loaded, described


def listen(address: str, backlog: int) -> Any:
    """A green listening socket on HOST:PORT (never SO_REUSEPORT); raises BootError."""
    try:
        host, port = parse_bind(address)
    except ValueError as exc:
        raise BootError(str(exc)) from exc
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        # eventlet.listen sets SO_REUSEPORT by default, so a stale server on the same port
        # would silently share the connections.
        return eventlet.listen((host, port), family=family, backlog=backlog, reuse_port=False)
    except OSError as exc:
        raise BootError(f"cannot listen on {address}: {exc.strerror or exc}") from exc


def url_of(sock: Any) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def open_sessions(loaded: app_loader.LoadedApp) -> int:
    """engine.io sessions not yet closed (closed ones linger in eio.sockets for a while)."""
    return sum(
        1 for eio in loaded.engines for session in list(eio.sockets.values()) if not session.closed
    )


def heartbeat(channel: Channel, http: HttpServer, loaded: app_loader.LoadedApp) -> None:
    """Tell the master our connection and session counts about once a second (and give the
    heap back to the system after a mass disconnect, see memory.HeapTrimmer)."""
    logger = logging.getLogger("sioctl.worker")
    minimum = memory.trim_minimum()
    trimmer = memory.HeapTrimmer(logger, minimum=minimum) if minimum else None
    while True:
        message: dict[str, Any] = {
            "t": master_channel.STATS,
            "connections": http.open_connections(),
            "sessions": open_sessions(loaded),
            "refused": http.refused,
        }
        if trimmer is not None:
            trimmer.check(message["sessions"])
        figures = getattr(getattr(loaded.server, "manager", None), "figures", None)
        if callable(figures):
            message["messaging"] = figures()
        counts = protocol.socketio_figures(loaded.server)
        if counts is not None:
            message["socketio"] = counts
        try:
            channel.send(message)
        except OSError:
            exit_now(0)  # the master is gone
        eventlet.sleep(HEARTBEAT_INTERVAL)


def install_signals() -> int:
    """SIGQUIT/SIGINT exit at once; SIGTERM makes the returned fd readable (drain request)."""

    def on_quit(signum: int, frame: Any) -> None:
        exit_now(0)

    signal.signal(signal.SIGQUIT, on_quit)
    signal.signal(signal.SIGINT, on_quit)
    return signal_pipe(signal.SIGTERM)


def reopen_logs_on_signal(read_fd: int, settings: Settings, access_logger: Any,
                          logger: logging.Logger) -> None:
    """A green thread: reopen the log files each time USR1 makes ``read_fd`` readable (the
    signal handler itself may not do it: it may run inside the hub)."""
    while True:
        wait_for_signal(read_fd)
        try:
            reopen_logs(settings, access_logger, logger)
        except OSError as exc:
            logger.error("USR1: cannot reopen the log files: %s", exc)


def start_deadline(seconds: float, logger: logging.Logger) -> None:
    """Exit after ``seconds`` whatever the green threads are doing (a real OS thread)."""
    threading: Any = original("threading")
    real_time: Any = original("time")

    def expire() -> None:
        real_time.sleep(max(0.0, seconds))
        logger.warning("graceful timeout (%gs) passed; exiting", seconds)
        exit_now(0)

    threading.Thread(target=expire, name="sioctl-drain-deadline", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    """Run the worker; returns (or exits with) the process status."""
    options = parse_args(argv)
    channel = Channel(options.channel_fd) if options.channel_fd is not None else None
    try:
        settings = read_settings()
    except BootError as exc:
        return report_boot_error(exc, channel, logging.getLogger("sioctl.worker"))
    logger = setup_logging(settings, options.slot)
    name_process(settings, options.slot)
    try:
        listener = listen(options.listen, settings.backlog) if options.listen else None
        json_codec.install()  # engineio.json's decoder and encoder made once (both engines)
        binary_check.install()  # Packet.data_is_binary without its lists and reduce
        loaded, described = load(settings, logger)
        tls_context = tls.server_context(settings)
        try:
            access_logger = access_log.make_access_logger(settings)
        except OSError as exc:
            raise BootError(f"cannot open access log {settings.accesslog}: {exc.strerror}") from exc
    except BootError as exc:
        return report_boot_error(exc, channel, logger)
    except Exception as exc:  # a bug or something unforeseen: still one line for the user
        return report_boot_error(unforeseen(exc), channel, logger)
    if options.check:
        exit_now(0)

    term_fd = install_signals()
    eventlet.spawn(reopen_logs_on_signal, signal_pipe(signal.SIGUSR1), settings, access_logger,
                   logger)
    ws_mask.install(eventlet.websocket.RFC6455WebSocket)
    gate = DrainGate(access_log.errors_logged(loaded.wsgi_app, logger))
    wsgi_app: Callable[..., Any] = gate
    if access_logger is not None:
        wsgi_app = access_log.AccessLogMiddleware(gate, access_logger)
    connections: eventlet.queue.LightQueue = eventlet.queue.LightQueue()
    http = HttpServer(wsgi_app, settings, connections, tls_context, logger,
                      write_span=write_stall.app_span(loaded.engines))
    eventlet.spawn(http.serve_forever)
    memory.log_figures_on_signal(loaded.server or loaded.engines[0], http, logger)

    if channel is not None:
        eventlet.spawn(receive_connections, channel, connections, logger, lambda: exit_now(0))
        channel.send({"t": master_channel.READY, "pid": os.getpid()})
        eventlet.spawn(heartbeat, channel, http, loaded)
        logger.info("serving %s (%s)", settings.app, described)
    else:
        eventlet.spawn(accept_connections, listener, connections)
        logger.info("serving %s (%s)", settings.app, described)
        logger.info("listening on %s", url_of(listener))

    wait_for_signal(term_fd)
    started = time.monotonic()
    start_deadline(settings.graceful_timeout, logger)
    if listener is not None:
        listener.close()  # standalone: nobody else should be handed to us now
    drain.drain(gate, loaded.engines, http, settings.graceful_timeout, logger,
                getattr(loaded.server, "manager", None))
    logger.debug("drain took %.2fs", time.monotonic() - started)
    exit_now(0)
    return 0
