"""Does a pub/sub subscriber that reads the way sioctl's listener does receive everything when
Redis has a backlog for it? (s27-hired: redis-py with hiredis on eventlet did not.)

Run from the repository root, with the interpreter whose redis-py (and hiredis or not) you
want to probe::

    python tests/bench/partial_reply_probe.py [--count 400] [--size 50000] [--sleep 2] [--green]

A real redis-server on 127.0.0.1 (started and stopped here); another process publishes
``--count`` messages of ``--size`` bytes while the subscriber sleeps ``--sleep`` seconds; then
the subscriber reads as ``listener.py`` does: one read waiting up to 0.2 s, then reads with
a zero timeout until nothing comes, each through ``pubsub_read.whole_message`` (``--raw``:
redis-py's ``get_message``, as the listener did before, which lost messages). ``--green``
monkey-patches eventlet first (the eventlet worker's situation). Keep ``count * size`` under
Redis's pub/sub output buffer limit (32 MB), past which Redis itself drops the subscriber.
Prints how many arrived and the errors raised (an error here means redis-py dropped the
connection: what Redis held for it is lost). Bounded: 20 s.
"""

from __future__ import annotations

import sys

if "--green" in sys.argv:
    import eventlet

    eventlet.monkey_patch()

import argparse  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import redis  # noqa: E402
import redis.utils  # noqa: E402

from sioctl.cluster.redis_server import RedisServer  # noqa: E402
from sioctl.worker.messaging.pubsub_read import whole_message  # noqa: E402

DEADLINE = 20.0


def probe(count: int, size: int, sleep: float, raw: bool) -> tuple[int, list[str]]:
    """(messages received, names of the errors the reads raised)."""
    with RedisServer(tempfile.mkdtemp(prefix="partial-"), unix_socket=False) as server:
        sub = redis.Redis.from_url(server.url, protocol=2).pubsub()
        sub.subscribe("c")
        sub.get_message(timeout=1)
        publisher = subprocess.Popen([sys.executable, "-c", (
            f"import redis; r = redis.Redis.from_url({server.url!r}); "
            f"[r.publish('c', b'x' * {size}) for _ in range({count})]")])
        time.sleep(sleep)
        got, errors, first = 0, [], True
        deadline = time.monotonic() + DEADLINE
        while got < count and time.monotonic() < deadline:
            try:
                read = sub.get_message if raw else lambda **kw: whole_message(sub, **kw)
                message = read(ignore_subscribe_messages=True, timeout=0.2 if first else 0)
            except Exception as exc:  # what the listener would treat as a lost connection
                errors.append(type(exc).__name__)
                first = True
                continue
            first = message is None
            got += message is not None
        publisher.wait(DEADLINE)
        sub.close()
        return got, errors


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--size", type=int, default=50_000)
    parser.add_argument("--sleep", type=float, default=2.0)
    parser.add_argument("--green", action="store_true", help="monkey-patch eventlet first")
    parser.add_argument("--raw", action="store_true",
                        help="read with redis-py's get_message, as the listener did before")
    args = parser.parse_args()
    got, errors = probe(args.count, args.size, args.sleep, args.raw)
    print(f"green {args.green}, hiredis {redis.utils.HIREDIS_AVAILABLE}, raw {args.raw}: "
          f"{got} of "
          f"{args.count} received, errors {errors}")
    return 0 if got == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
