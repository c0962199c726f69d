"""The asyncio worker process: load the app, run its lifespan, take connections, serve them
with uvicorn's protocols, report to the master, drain on SIGTERM.

Run as ``python -m sioctl.worker.aio``, in a cluster (``--channel-fd FD --slot N``) or standalone
(``--listen HOST:PORT``, for ``sioctl dev``), as the eventlet worker (:mod:`sioctl.worker.main`),
with which it shares the engine-free boot steps (:mod:`sioctl.worker.boot`).
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import signal
import socket
import threading
import time
from typing import Any

from sioctl.cluster import channel as master_channel
from sioctl.cluster.settings import Settings, parse_bind, unix_path
from sioctl.worker import access_log, boot, memory, protocol, tls
from sioctl.worker.aio import app as aio_app
from sioctl.worker.aio import fixes
from sioctl.worker.aio.channel import AsyncChannel
from sioctl.worker.aio.lifespan import Lifespan
from sioctl.worker.aio.serving import Serving
from sioctl.worker.errors import BootError
from sioctl.worker.protocol.core import binary_check, json_codec, write_stall

HEARTBEAT_INTERVAL = master_channel.HEARTBEAT_INTERVAL
POLL_INTERVAL = 0.1
# Of the graceful timeout, what is kept for the app's lifespan shutdown (at most).
SHUTDOWN_SHARE = 5.0


def new_loop(unix_binds: bool = False) -> asyncio.AbstractEventLoop:
    """uvloop's event loop when it is installed, else asyncio's own. With ``unix_binds`` (a
    ``-b unix:PATH``) asyncio's own: uvloop reads a connection's peer from its descriptor, so
    a Unix connection would lose the client address the master named for it (serving.py's
    NamedPeerSocket)."""
    if unix_binds:
        return asyncio.new_event_loop()
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def listen(address: str, backlog: int) -> socket.socket:
    """A listening socket on HOST:PORT (standalone mode; never SO_REUSEPORT)."""
    try:
        host, port = parse_bind(address)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return socket.create_server((host, port), family=family, backlog=backlog)
    except ValueError as exc:
        raise BootError(str(exc)) from exc
    except OSError as exc:
        raise BootError(f"cannot listen on {address}: {exc.strerror or exc}") from exc


class Worker:
    """One asyncio worker: everything after the app is imported, on the running loop."""

    def __init__(self, settings: Settings, loaded: aio_app.LoadedAsgiApp,
                 channel: AsyncChannel | None, listener: socket.socket | None,
                 logger: logging.Logger) -> None:
        self.settings = settings
        self.loaded = loaded
        self.channel = channel
        self.listener = listener
        self.logger = logger
        self.lifespan = Lifespan(loaded.asgi_app, logger)
        self.serving: Serving | None = None
        self._snapshot: Any = None  # tracemalloc's at the last memory dump
        self.access_logger: Any = None

    async def run(self) -> int:
        """Boot (manager, lifespan), serve until SIGTERM, drain; returns the exit status."""
        loop = asyncio.get_running_loop()
        term = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, term.set)
        for signum in (signal.SIGQUIT, signal.SIGINT):
            loop.add_signal_handler(signum, boot.exit_now, 0)
        loop.add_signal_handler(signal.SIGUSR2, self._dump_memory)
        loop.add_signal_handler(signal.SIGUSR1, self._reopen_logs)
        try:
            # What can fail at once first; the app's own startup last, just before ready.
            access_logger = self.access_logger = self._access_logger()
            tls_context = tls.server_context(self.settings)
            described = await aio_app.join_workers(self.loaded.server, self.settings, self.logger)
            await self.lifespan.startup()
            serving = self.serving = Serving(
                self.loaded.asgi_app, self.settings, self.logger, tls_context,
                self.lifespan.state, access_logger,
                write_stall.app_span(self.loaded.engines))
        except BootError as exc:
            return boot.report_boot_error(exc, self.channel, self.logger)
        except Exception as exc:
            return boot.report_boot_error(boot.unforeseen(exc), self.channel, self.logger)
        if self.channel is not None:
            self.channel.start_reading(serving.adopt, lambda: boot.exit_now(0))
            self.channel.send({"t": master_channel.READY, "pid": os.getpid()})
        else:
            assert self.listener is not None
            accepting = loop.create_task(_accept(self.listener, serving))
        self.logger.info("serving %s on asyncio (%s; %s loop)", self.settings.app, described,
                         type(loop).__module__.split(".")[0])
        if self.listener is not None:
            host, port = self.listener.getsockname()[:2]
            self.logger.info("listening on http://%s:%s", f"[{host}]" if ":" in host else host,
                             port)
        heartbeat = loop.create_task(self._heartbeat())
        await term.wait()
        heartbeat.cancel()
        if self.listener is not None:
            accepting.cancel()
        await self.drain()
        return 0

    def _access_logger(self) -> Any:
        try:
            return access_log.make_access_logger(self.settings)
        except OSError as exc:
            raise BootError(f"cannot open access log {self.settings.accesslog}: "
                            f"{exc.strerror}") from exc

    def _reopen_logs(self) -> None:
        """USR1: reopen the error and access logs (the master sends it after a logrotate)."""
        try:
            boot.reopen_logs(self.settings, self.access_logger, self.logger)
        except OSError as exc:
            self.logger.error("USR1: cannot reopen the log files: %s", exc)

    def _dump_memory(self) -> None:
        """SIGUSR2: log the worker's memory figures once, as the eventlet worker does
        (worker/memory.py; walks every object, so only on demand)."""
        try:
            started = time.perf_counter()
            result = memory.figures(self.loaded.server or self.loaded.engines[0], objects=True)
            tracing, self._snapshot = memory.traced(self._snapshot)
            result.update(tracing)
            result["dump_ms"] = round((time.perf_counter() - started) * 1000)
            self.logger.warning("memory %s", json.dumps(result))
        except Exception:
            self.logger.exception("memory figures failed")

    async def _heartbeat(self) -> None:
        """Refresh the serving clock and tell the master our counts about once a second (and
        give the heap back to the system after a mass disconnect, see memory.HeapTrimmer)."""
        assert self.serving is not None
        minimum = memory.trim_minimum()
        trimmer = memory.HeapTrimmer(self.logger, minimum=minimum) if minimum else None
        while True:
            self.serving.tick()
            if trimmer is not None:
                trimmer.check(aio_app.open_sessions(self.loaded))
            if self.channel is not None:
                message: dict[str, Any] = {
                    "t": master_channel.STATS,
                    "connections": self.serving.open_connections(),
                    "sessions": aio_app.open_sessions(self.loaded),
                    "refused": self.serving.refused,
                }
                figures = aio_app.messaging_figures(self.loaded.server)
                if figures is not None:
                    message["messaging"] = figures  # the Redis figures of status and metrics
                counts = protocol.socketio_figures(self.loaded.server)
                if counts is not None:
                    message["socketio"] = counts
                try:
                    self.channel.send(message)
                except OSError:
                    boot.exit_now(0)  # the master is gone
            await asyncio.sleep(HEARTBEAT_INTERVAL)

    async def drain(self) -> None:
        """Refuse new sessions, close the open ones, let connections end, run the lifespan
        shutdown, send what the Redis manager still holds and close it; all within the
        graceful timeout (a thread enforces it if the loop hangs)."""
        assert self.serving is not None
        timeout = max(0.0, self.settings.graceful_timeout)
        _deadline_thread(timeout, self.logger)
        started = time.monotonic()
        connections_until = started + timeout - min(SHUTDOWN_SHARE, timeout / 4)
        if self.listener is not None:
            self.listener.close()
        self.serving.gate.draining = True
        self.logger.info("draining: %d sessions, %d connections, graceful timeout %gs",
                         aio_app.open_sessions(self.loaded), self.serving.open_connections(),
                         timeout)
        await aio_app.close_sessions(self.loaded, self.logger)
        self.serving.shutdown_connections()
        while self.serving.open_connections() and time.monotonic() < connections_until:
            await asyncio.sleep(POLL_INTERVAL)
        left = self.serving.open_connections()
        if left:
            self.logger.warning("drain timed out with %d connections open", left)
        await self.lifespan.shutdown(started + timeout - time.monotonic())
        # What the shutdown emitted goes out before the manager closes, within the timeout.
        await aio_app.leave_workers(self.loaded.server, started + timeout - time.monotonic(),
                                    self.logger)
        self.logger.info("drained%s; exiting", "" if left else ": no connections left")


async def _accept(listener: socket.socket, serving: Serving) -> None:
    """Standalone mode: hand every connection our listener accepts to :meth:`Serving.adopt`,
    as the channel does, so both modes serve connections the same way."""
    loop = asyncio.get_running_loop()
    listener.setblocking(False)
    while True:
        try:
            sock, addr = await loop.sock_accept(listener)
        except OSError as exc:
            if listener.fileno() < 0:
                return  # closed by the drain
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                await asyncio.sleep(0.1)  # out of fds for a moment; don't spin
            continue
        serving.adopt(sock, (addr[0], addr[1]))


def _deadline_thread(seconds: float, logger: logging.Logger) -> None:
    """Exit after ``seconds`` whatever the loop is doing (a stuck handler cannot hold us)."""

    def expire() -> None:
        time.sleep(seconds)
        logger.warning("graceful timeout (%gs) passed; exiting", seconds)
        boot.exit_now(0)

    threading.Thread(target=expire, name="sioctl-drain-deadline", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    """Run the asyncio worker; returns (or exits with) the process status."""
    options = boot.parse_args(argv, prog="python -m sioctl.worker.aio")
    logger = logging.getLogger("sioctl.worker")
    settings: Settings | None = None
    try:
        settings = boot.read_settings()
    except BootError as exc:
        unreadable = exc
    loop = new_loop(settings is not None and any(unix_path(bind) for bind in settings.binds))
    asyncio.set_event_loop(loop)
    channel = (AsyncChannel(options.channel_fd, loop, logger)
               if options.channel_fd is not None else None)
    if settings is None:
        return boot.report_boot_error(unreadable, channel, logger)
    logger = boot.setup_logging(settings, options.slot)
    boot.name_process(settings, options.slot)
    # uvicorn logs every websocket's opening and closing at INFO: debug here.
    if logger.getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    try:
        listener = listen(options.listen, settings.backlog) if options.listen else None
        fixes.install()  # before the rules: their shell keeps the driver's translate_request
        json_codec.install()  # engineio.json's decoder and encoder made once (both engines)
        binary_check.install()  # Packet.data_is_binary without its lists and reduce
        loaded = aio_app.load(settings)
        aio_app.install_rules(loaded, settings)
    except BootError as exc:
        return boot.report_boot_error(exc, channel, logger)
    except Exception as exc:
        return boot.report_boot_error(boot.unforeseen(exc), channel, logger)
    if options.check:
        boot.exit_now(0)
    code = loop.run_until_complete(Worker(settings, loaded, channel, listener, logger).run())
    boot.exit_now(code)
    return code
