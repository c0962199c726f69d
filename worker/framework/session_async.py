"""Redis-backed sessions on asyncio: the same cookie, keys and JSON as ``session.py`` (so an
eventlet worker and an asyncio worker read each other's sessions), read and written with
``redis.asyncio``.

Everything that decides (which cookie, which session id, how long the data lives, what a bad
value gives) is ``session.py``'s; this module only awaits the two Redis calls. A handler saves
with ``await ctx.session.save()``; an ASGI view creates a session with ``await
new_redis_session_cookie_async(data, config, client)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import redis

from .session import Session, SessionLoader, _RedisStore, new_redis_session

if TYPE_CHECKING:
    import redis.asyncio

    from .config import AppConfig


class AsyncRedisStore(_RedisStore):
    """The Redis store on a ``redis.asyncio`` client: :meth:`write` checks and encodes at
    once, and returns the write to await (so that ``Session.save`` raises its errors before
    any await, as on eventlet)."""

    def write(self, session_id: str, data: dict[str, Any], expires_at: float | None) -> Any:
        key, text, px = self.record(session_id, data, expires_at)
        return self.client.set(key, text, px=px)

    async def read(self, session_id: str) -> Any:
        return self.parse(await self.client.get(self.prefix + session_id))


class AsyncSessionLoader(SessionLoader):
    """:class:`SessionLoader` whose ``load(environ)`` is a coroutine reading
    ``redis.asyncio`` (the asyncio shell awaits it)."""

    store_class = AsyncRedisStore

    async def load(self, environ: dict[str, Any]) -> Session:  # type: ignore[override]
        """The session the handshake's cookie names; an empty Session when there is none.
        Never raises for a bad cookie or a failing Redis (see :meth:`SessionLoader.load`)."""
        found = self.find(environ)
        if isinstance(found, Session):
            return found
        session_id, issued = found
        try:
            data = await self._store.read(session_id)  # type: ignore[union-attr]
        except redis.RedisError as exc:
            return self.unavailable(exc)
        except (UnicodeDecodeError, ValueError, RecursionError):
            data = None
        return self.redis_session(session_id, issued, data)


async def new_redis_session_cookie_async(
    data: dict[str, Any],
    config: AppConfig,
    redis_client: redis.asyncio.Redis,
    path: str = "/",
    secure: bool = False,
) -> str:
    """``session.new_redis_session_cookie`` for async code (an ASGI login view): store ``data``
    as a new Redis-backed session with ``redis_client`` (``redis.asyncio``); returns the
    ``Set-Cookie`` header value. Raises as that function does."""
    session, header = new_redis_session(
        data, config, AsyncRedisStore(redis_client, config.session_redis_prefix), path, secure)
    await session.save()
    return header
