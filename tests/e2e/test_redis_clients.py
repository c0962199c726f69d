"""The workers' clients for idempotent work (worker/redis_clients.py: the gateway's registry,
Redis sessions, socket id claims) keep working across a Redis restart, on eventlet, with either
of redis-py's reply parsers.

A restarted Redis closes every pooled connection. redis-py's pool checks a connection before
handing it out, and its own parser finds the EOF there and reconnects; with hiredis under
eventlet the check answers "data waiting" for the closed socket (hiredis's closed-socket test
needs ``select.poll``, which monkey-patching removes) and a RESP3 pool ignores that answer, so
the command went out on the dead connection: the gateway's registry rewrite after a restart
failed (test_gateway_redis_back.py, with hiredis installed). The client retries such a command
once on a new connection. The client runs in a child interpreter, monkey-patched as a worker
is, with the parser the test names (tests/support/redis_parsers.py).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.messaging import OwnRedis
from tests.support.paths import REPO_ROOT
from tests.support.redis_parsers import PARSERS, child_prelude

# The child: writes with a pooled connection, waits for the parent to restart Redis (a line on
# stdin), then uses the pooled connection again (a command, a pipeline) and prints what it got.
CHILD = """
import json, sys, warnings
warnings.filterwarnings("ignore", message=r"\\s*Eventlet is deprecated")
import eventlet
eventlet.monkey_patch()
import redis.utils
from sioctl.worker.redis_clients import blocking_client

client = blocking_client(sys.argv[1])
client.set("before", 1)
print(json.dumps({"hiredis": redis.utils.HIREDIS_AVAILABLE}), flush=True)
sys.stdin.readline()
eventlet.sleep(0.2)  # the closed connection's EOF is there long before
answers = {}
try:
    answers["set"] = bool(client.set("after", 2))
    pipe = client.pipeline(transaction=False)
    pipe.get("after")
    pipe.exists("before")
    answers["pipeline"] = [value.decode() if isinstance(value, bytes) else value
                           for value in pipe.execute()]
except Exception as exc:
    answers["error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(answers), flush=True)
"""


@pytest.mark.parametrize("parser", PARSERS)
def test_the_blocking_client_survives_a_redis_restart_on_eventlet(own_redis: OwnRedis,
                                                                 parser: str) -> None:
    code = child_prelude(parser) + CHILD
    child = subprocess.Popen([sys.executable, "-c", code, own_redis.url], cwd=REPO_ROOT,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdin is not None and child.stdout is not None
    try:
        first = json.loads(child.stdout.readline() or "{}")
        assert first == {"hiredis": parser == "hiredis"}
        own_redis.stop()
        own_redis.start()  # without its data
        child.stdin.write("go\n")
        child.stdin.flush()
        answers = json.loads(child.stdout.readline() or "{}")
        assert answers == {"set": True, "pipeline": ["2", 0]}
    finally:
        child.kill()
        child.wait(timeout=10)
