"""The client manager of socketio.AsyncServer apps: sioctl's Redis messaging on asyncio.

The asyncio shell of what :mod:`.manager` is for eventlet, on redis-py's asyncio client, with
the same guarantees: a batched publisher with a bounded queue (:mod:`.async_publisher`), a
listener that resubscribes and never dies (:mod:`.async_readers`), targeted delivery through
owner records and each worker's own channel, the owner cache, misdelivery forwarding, exact
loss counts, latency, the streams transport, the ``when_redis_back`` hooks and the global
queries (:mod:`.async_queries`). Every decision is :class:`.base.SioctlManagerBase`'s and its
engine-free modules', shared with the eventlet shell: this class awaits the Redis calls and runs
the tasks.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from socketio.async_pubsub_manager import AsyncPubSubManager

from sioctl.worker.flow import arun
from sioctl.worker.redis_clients import new_asyncio
from sioctl.worker.redis_cluster import TOPOLOGY_EVERY, async_describe

from . import routing
from .async_publisher import AsyncPublisher, aclose, stop_tasks
from .async_queries import AsyncQueries
from .async_readers import AsyncListener, AsyncRecoveryReader, AsyncStreamListener
from .base import OWNER_REFRESH, OWNER_TTL, SioctlManagerBase, client_options, listener_options
from .bursts import Held, hold_or_log, write_held_async
from .fanout import AsyncFanoutMixin
from .owners import rewrite_flow
from .recovering import RecoveryMixin
from .recovery import Restore


class AsyncSioctlRedisManager(RecoveryMixin, SioctlManagerBase, AsyncPubSubManager,
                              AsyncFanoutMixin):
    """A Redis client manager for socketio.AsyncServer apps (see the module docstring)."""

    name = "sioctl-redis-asyncio"

    def __init__(
        self,
        url: str,
        channel: str = "socketio",
        logger: logging.Logger | None = None,
        redis_options: dict[str, Any] | None = None,
        max_queue: int = 100_000,
        transport: str = "pubsub",
        stream_maxlen: int = 10_000,
    ) -> None:
        super().__init__(channel=channel, write_only=False, logger=logger)
        self._init_core(transport)
        self._init_redis(url, redis_options, max_queue, stream_maxlen)
        self._tasks: list[Any] = []
        # Owner lookups under way, shared by the emits that need the same answer.
        self._lookups: dict[tuple[str, str], asyncio.Future[str | None]] = {}
        self.queries = AsyncQueries(self)

    def _new_client(self) -> aioredis.Redis:
        return new_asyncio(self.redis_url, self.channel,
                           **client_options(self.redis_url, self.redis_options))

    def _new_listener_client(self) -> aioredis.Redis:
        return new_asyncio(self.redis_url, self.channel,
                           **listener_options(self.redis_url, self.redis_options))

    def initialize(self) -> None:
        """Start the publisher, the reader and the owner-record refresher (in the running
        loop: AsyncServer calls this on its first connection, or the worker at boot)."""
        logger = self._get_logger()
        self.publisher = AsyncPublisher(
            self._new_client,
            self.server.start_background_task,
            logger,
            self.max_queue,
            listening=lambda: self.subscribed,
            reconnected=self._claim_owned_sockets,
            stream_maxlen=self.stream_maxlen if self.transport == "streams" else None,
            unheard=self._unheard,
            stream_ttl=OWNER_TTL,
        )
        self._sharded_publisher()
        self.publisher.start()
        # The pub/sub listener's client speaks RESP2 (base.listener_options); the stream
        # reader's keeps the default, its XREAD answers differ between the protocols.
        streams = self.transport == "streams"
        connect = self._new_client if streams else self._new_listener_client
        reader = AsyncStreamListener if streams else AsyncListener
        self.listener = reader(connect, self.listened_channels(),
                               asyncio.sleep, logger, self._reclaim_now)
        super().initialize()  # starts _thread, which reads _listen()
        self._tasks = [self.thread, self.server.start_background_task(self._refresh_owners)]
        if self.topology["kind"] != "single":
            self._tasks.append(self.server.start_background_task(self._watch_topology))
        if self.sessions is not None:
            self.recovery_reader = AsyncRecoveryReader(
                self._new_client, [self.recovery_channel], asyncio.sleep, logger)
            self._tasks.append(self.server.start_background_task(self._recovery_thread))

    @property
    def subscribed(self) -> bool:
        """Whether this worker's readers (and, with recovery, its recovery stream reader)
        are reading now."""
        reading = SioctlManagerBase.subscribed.fget(self)  # type: ignore[attr-defined]
        if self.recovery_reader is not None:
            reading = reading and bool(self.recovery_reader.subscribed)
        return bool(reading)

    async def _recovery_thread(self) -> None:
        """Deliver the recovery stream's events here, in order, forever."""
        async for offset, raw in self.recovery_reader.messages():
            try:
                message = self._entry_message(offset, raw)
                if message is not None:
                    await self._library_handle_emit(message)
            except Exception:
                self._get_logger().exception("cannot deliver recovery stream entry %s", offset)

    def _record_refresh(self) -> float:
        return OWNER_REFRESH

    async def _handle_emit(self, message: dict[str, Any]) -> Any:
        if self._emitted_here(message) or self._nobody_here(message):
            return None
        return await self._library_handle_emit(message)

    async def until_subscribed(self, timeout: float) -> bool:
        """Wait until the reader has subscribed (a worker that reported ready before would
        miss what the others publish meanwhile); False if it has not within ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while not self.subscribed:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def aclose(self) -> None:
        """Stop the tasks and close every connection (a worker's shutdown). What is still
        queued is not sent."""
        tasks = [t for t in (*self._tasks, getattr(self.publisher, "task", None)) if t]
        await stop_tasks(tasks, self._get_logger())
        if isinstance(self.publisher, AsyncPublisher):
            await self.publisher.close()
        if self.listener is not None:
            await self.listener.close()
        if self.recovery_reader is not None:
            await self.recovery_reader.close()
        await aclose(self.redis)

    # ---------------------------------------------------------------------- socket owners

    async def pre_connect(self, eio_sid: str, namespace: str) -> Any:
        sessions = self.sessions
        pid, restore = (None, None) if sessions is None else \
            sessions.connecting.get((eio_sid, namespace), (None, None))
        if sessions is not None and restore is not None:
            # The reader leaves the socket out from the moment it can be a participant
            # until its replay has caught up with the reader.
            sessions.catching_up.add((namespace, restore.record.sid))
        try:
            sid = await super().pre_connect(eio_sid, namespace)
            if sid is not None and self.transport == "streams":
                # Before the client hears CONNECT: from then on no guarded XADD (GUARDED_XADD)
                # can put a message for this socket on the stream of a worker it left.
                await self._record_owner_now(namespace, sid)
            if sessions is not None and sid is not None and pid is not None:
                sessions.pids[(namespace, sid)] = pid
                if restore is not None and restore.record.sid == sid:
                    await self._finish_restore(restore, sid)
        finally:
            if sessions is not None and restore is not None:
                sessions.catching_up.discard((namespace, restore.record.sid))
        return sid

    async def connect(self, sid: str, namespace: str) -> Any:
        sid = await super().connect(sid, namespace)
        self._connected_here(namespace, sid)
        if self.sessions is not None:
            self._write_record(namespace, sid, self.sessions.record_ttl_ms(OWNER_REFRESH))
        return sid

    # ----------------------------------------------------------- connection state recovery
    # As the eventlet manager's (manager.py), awaited.

    async def start_restore(self, namespace: str, auth: Any) -> tuple[str, Restore | None]:
        """The private id a CONNECT to ``namespace`` gets, and the restore its ``auth`` asks
        for when one can be made (``RecoveryMixin.start_restore_flow``)."""
        return await arun(self.start_restore_flow(namespace, auth))

    async def _finish_restore(self, restore: Restore, sid: str) -> None:
        """Socket ``sid`` came back (``RecoveryMixin.finish_restore_flow``); python-socketio's
        emit awaits its send tasks, so each replayed event is sent before the next."""
        await arun(self.finish_restore_flow(restore, sid))

    async def _record_owner_now(self, namespace: str, sid: str) -> None:
        """Write the owner record of ``sid`` at once (one round trip); while Redis does not
        answer, queue it with the rest instead of holding every connect up."""
        if self._lookups_failing:
            self._record_owner_later(namespace, sid, None)
            return
        try:
            await self.redis.execute_command(*self._owner_record(namespace, sid))
        except RedisError as exc:
            self._record_owner_later(namespace, sid, exc)

    async def _watch_topology(self) -> None:
        """Keep ``topology`` (status, metrics) current: the master, or the shards."""
        while True:
            self.topology = await async_describe(self.redis, self.redis_url)
            await asyncio.sleep(TOPOLOGY_EVERY)

    async def _refresh_owners(self) -> None:
        while True:
            await asyncio.sleep(OWNER_REFRESH)
            self._claim_owned_sockets()

    async def _reclaim_now(self) -> None:
        """Back on a Redis that may have lost everything: write the owner records at once,
        before this worker hears (and answers) anything, so targeted emits find it again;
        then run the ``when_redis_back`` hooks, each in a task of its own. The records go in
        ``owners.rewrite_flow`` (a second try on a new connection), as on eventlet."""
        records = [self._owner_record(namespace, sid) for namespace, sid in self._owned_sockets()]
        if await arun(rewrite_flow(self.redis, records, self._get_logger())):
            self._lookups_failing = False
        for callback in self.when_redis_back:
            self.server.start_background_task(self._run_hook, callback)

    async def _run_hook(self, callback: Callable[[], Any]) -> None:
        """Run a ``when_redis_back`` hook: a coroutine function is awaited on the loop, a plain
        function runs in the loop's default thread executor (it may block: a hook written for
        eventlet would otherwise hold every connection of this worker while it runs); an
        awaitable it returns is then awaited on the loop."""
        try:
            # (an object whose __call__ is async counts as a coroutine function)
            if inspect.iscoroutinefunction(callback) or inspect.iscoroutinefunction(
                    type(callback).__call__):
                result = callback()
            else:
                result = await asyncio.get_running_loop().run_in_executor(None, callback)
            if inspect.isawaitable(result):
                await result
        except Exception:
            self._get_logger().exception("a when_redis_back hook failed")

    async def _owner_of(self, sid: Any, namespace: str) -> str | None:
        """The host id of the worker that owns socket ``sid``, if one does. Concurrent emits
        to the same socket share one lookup: a burst of them (240 tasks emitting at once)
        would otherwise open a connection each, past the pool's limit."""
        known, cached = self._cached_owner(sid, namespace)
        if known:
            return cached
        key = (namespace, sid)
        pending = self._lookups.get(key)
        if pending is None:
            pending = self._lookups[key] = asyncio.ensure_future(self._look_up(namespace, sid))
            pending.add_done_callback(lambda _: self._lookups.pop(key, None))
        return await asyncio.shield(pending)

    async def _look_up(self, namespace: str, sid: str) -> str | None:
        try:
            owner = await self.redis.get(self._owner_key(namespace, sid))
        except RedisError as exc:
            self._owner_lookup_failed(exc)
            return None
        return self._owner_looked_up(namespace, sid, owner)

    # ------------------------------------------------------------------------ publishing

    async def emit(self, event: str, data: Any, namespace: Any = None,
                   room: Any = None, skip_sid: Any = None, callback: Any = None,
                   to: Any = None, **kwargs: Any) -> Any:
        """python-socketio's emit; a plain emit to a socket of another worker is queued for
        it directly (``SioctlManagerBase._direct_emit``)."""
        if self._direct_emit(event, data, namespace, to or room, skip_sid, callback, kwargs):
            return None
        return await super().emit(event, data, namespace=namespace, room=room,
                                  skip_sid=skip_sid, callback=callback, to=to, **kwargs)

    async def _publish(self, data: dict[str, Any]) -> None:
        if self._recovery_publish(data):
            return
        namespace, target, local = self._addressed(data)
        needs = routing.needs_owner(data, local)
        owner = await self._owner_of(target, namespace) if needs else None
        self._send_routed(data, local, owner)

    async def _listen(self) -> Any:
        """As the eventlet shell's ``_listen``: read a burst at a time, another worker's emit
        to a room or socket here delivered at once, its frames written per socket at the end
        of the burst (.bursts); anything else first has the held frames written."""
        assert self.listener is not None
        held = Held()
        async for batch in self.listener.batches():
            for heard_on, raw in batch:
                channel = self._heard_on(heard_on)
                for data in self._heard(channel, raw):
                    if self._passed_on_misdelivered(channel, data) or hold_or_log(self, data, held):
                        continue
                    if held:
                        await write_held_async(self, held)
                    if await self.queries.handle(data):
                        continue
                    yield data
            if held:
                await write_held_async(self, held)

    # ------------------------------------------------------------------- global queries
    # As the eventlet manager's (manager.py), awaited.

    async def fetch_sockets(
        self, room: str | None = None, namespace: str = "/", timeout: float = 2.0
    ) -> list[dict[str, Any]]:
        """Every socket in ``room`` (all when None) on every worker and node, each as
        ``{"sid", "rooms"}``. Raises QueryTimeout when a worker does not answer in time."""
        answers = await self.queries.ask("fetch", room, namespace, timeout)
        return [socket for answer in answers for socket in answer.get("sockets", [])]

    async def rooms_of(self, sid: str, namespace: str = "/", timeout: float = 2.0) -> list[str]:
        """The rooms of socket ``sid``, wherever it is ([] when it is nowhere)."""
        for socket in await self.fetch_sockets(sid, namespace, timeout):
            if socket["sid"] == sid:
                return list(socket["rooms"])
        return []

    async def sockets_join(self, target: str, room: str | None = None, namespace: str = "/",
                           timeout: float = 2.0) -> int:
        """Make every socket in ``room`` (all when None) join ``target``; returns how many."""
        answers = await self.queries.ask("join", room, namespace, timeout, target=target)
        return sum(int(answer.get("count", 0)) for answer in answers)

    async def sockets_leave(self, target: str, room: str | None = None, namespace: str = "/",
                            timeout: float = 2.0) -> int:
        """Make every socket in ``room`` (all when None) leave ``target``; returns how many."""
        answers = await self.queries.ask("leave", room, namespace, timeout, target=target)
        return sum(int(answer.get("count", 0)) for answer in answers)

    async def disconnect_sockets(self, room: str | None = None, namespace: str = "/",
                                 timeout: float = 2.0) -> int:
        """Disconnect every socket in ``room`` (all when None); returns how many."""
        answers = await self.queries.ask("disconnect", room, namespace, timeout)
        return sum(int(answer.get("count", 0)) for answer in answers)
