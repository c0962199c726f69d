"""A websocket's send lock on eventlet (worker/connection.py ``SendLock``, issue 19: memory per
idle websocket) is eventlet's ``Semaphore(1)`` without the waiters' deque made up front: held
by one green thread at a time, a second one waits and takes it at the release, a non-blocking
acquire fails while it is held, and a timed one gives up.

eventlet runs in a child interpreter (it must monkey-patch first); the script prints what it
saw as one JSON line.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.paths import REPO_ROOT

SCRIPT = r'''
import warnings
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
import eventlet
eventlet.monkey_patch()
import json
from sioctl.worker.connection import SendLock

lock = SendLock()
seen = {"deque_up_front": bool(vars(lock).get("_waiters"))}
order = []

def holder():
    with lock:
        order.append("held")
        eventlet.sleep(0.05)
        order.append("released")

def waiter():
    lock.acquire()
    order.append("waiter took it")
    seen["locked_while_held"] = lock.locked()
    lock.release()

first = eventlet.spawn(holder)
eventlet.sleep(0)  # the holder runs first and holds the lock
seen["nonblocking_while_held"] = lock.acquire(blocking=False)
seen["timed_while_held"] = lock.acquire(timeout=0.01)
second = eventlet.spawn(waiter)
first.wait()
second.wait()
seen["order"] = order
seen["free_at_the_end"] = not lock.locked() and lock.acquire(blocking=False)
print(json.dumps(seen))
'''


def test_send_lock_behaves_as_eventlets_semaphore() -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen == {
        "deque_up_front": False,
        "nonblocking_while_held": False,
        "timed_while_held": False,
        "order": ["held", "released", "waiter took it"],
        "locked_while_held": True,
        "free_at_the_end": True,
    }, seen
