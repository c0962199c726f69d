"""Event handlers' green threads on eventlet (worker/protocol/green_handlers.py, issue 19): a
handler starts at once and its caller goes on when it first waits; a handler's greenlet serves
the next handler once it has ended, in a new empty context, unless something tracks it by weak
reference or gave it attributes; at most IDLE_HANDLERS wait; an exception thrown into a
waiting one (a timer a handler left behind) ends it and reaches nobody else.

eventlet runs in a child interpreter (it must monkey-patch first); the script prints what it
saw as one JSON line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tests.support.paths import REPO_ROOT

SCRIPT = r'''
import warnings
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
import eventlet
eventlet.monkey_patch()
import contextvars
import json
import threading
import weakref
import greenlet
from eventlet.hubs import get_hub
from sioctl.worker.protocol import green_handlers
from sioctl.worker.protocol.green_handlers import IDLE_HANDLERS, run_now

seen = {}
mark = contextvars.ContextVar("mark", default=None)
local = threading.local()
kept = []
greenlets = []


def handler(name, wait=0.0, raises=False, weak=False, attribute=False, local_value=None):
    seen.setdefault("order", []).append(f"{name}:start")
    seen.setdefault("context", []).append(mark.get())
    mark.set(name)
    # Held strongly (an id could be a freed greenlet's): it changes nothing of the reuse.
    greenlets.append(greenlet.getcurrent())
    if local_value is not None:
        seen.setdefault("local", []).append(getattr(local, "value", None))
        local.value = local_value
    if weak:
        kept.append(weakref.ref(greenlet.getcurrent()))
    if attribute:
        greenlet.getcurrent().mine = name
    if wait:
        eventlet.sleep(wait)
    if raises:
        raise RuntimeError("on purpose")
    seen["order"].append(f"{name}:end")


def idle():
    return len(green_handlers._idle_handlers(get_hub()))


def main():
    out = {}
    # 1. Ends without waiting: done before run_now returns; then its greenlet is idle.
    run_now(handler, "a")
    out["after_a"] = list(seen["order"])
    out["idle_after_a"] = idle()
    # 2. Waits: run_now returns at its first wait; it ends later, from the hub.
    run_now(handler, "b", 0.05)
    out["after_b_started"] = list(seen["order"])
    eventlet.sleep(0.2)
    out["after_b_ended"] = list(seen["order"])
    out["idle_after_b"] = idle()
    # 3. Raises: nothing reaches the caller; its greenlet serves the next.
    run_now(handler, "c", 0.0, True)
    run_now(handler, "d")
    out["after_d"] = list(seen["order"])
    out["contexts"] = list(seen["context"])
    out["greenlets_a_to_d"] = len(set(map(id, greenlets)))
    # 4. Tracked by weak reference, or given an attribute: not reused.
    run_now(handler, "e", 0.0, False, True)
    run_now(handler, "f", 0.0, False, False, True)
    run_now(handler, "g")
    out["e_like_d"] = greenlets[-3] is greenlets[-4]
    out["e_f_g_distinct"] = len(set(map(id, greenlets[-3:])))
    # 5. A green thread's threading.local: never passed on.
    seen["local"] = []
    for i in range(3):
        run_now(handler, f"l{i}", 0.0, False, False, False, f"value-{i}")
    out["locals"] = seen["local"]
    # 6. Many waiting at once: all end; IDLE_HANDLERS of them are kept.
    before = len(seen["order"])
    for i in range(IDLE_HANDLERS + 5):
        run_now(handler, f"w{i}", 0.02)
    eventlet.sleep(0.3)
    out["waiters_ended"] = sum(1 for e in seen["order"][before:] if e.endswith(":end"))
    out["waiters"] = IDLE_HANDLERS + 5
    out["idle_after_waiters"] = idle()
    out["idle_handlers"] = IDLE_HANDLERS
    # 7. Thrown into while idle, by the hub (a timer left behind): it ends, and no other.
    waiting = idle()
    victim = green_handlers._idle_handlers(get_hub())[-1]
    get_hub().schedule_call_global(0, victim.throw, RuntimeError("stray"))
    eventlet.sleep(0.05)
    out["thrown_dead"] = victim.dead
    out["idle_after_throw"] = [waiting, idle()]
    run_now(handler, "after-throw")
    out["last"] = seen["order"][-2:]
    print(json.dumps(out))


eventlet.spawn(main).wait()
'''


def _run() -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_handlers_run_at_once_and_greenlets_serve_the_next() -> None:
    out = _run()
    assert out["after_a"] == ["a:start", "a:end"]
    assert out["idle_after_a"] == 1
    assert out["after_b_started"] == ["a:start", "a:end", "b:start"]
    assert out["after_b_ended"][-1] == "b:end"
    assert out["idle_after_b"] == 1
    # c raised: no "c:end", and d ran after it.
    assert out["after_d"][-3:] == ["c:start", "d:start", "d:end"]
    # Every handler started in an empty context, on one greenlet for a to d.
    assert out["contexts"] == [None] * 4
    assert out["greenlets_a_to_d"] == 1
    # e ran on d's greenlet; neither it nor f's was reused (weak reference, attribute).
    assert out["e_like_d"] is True
    assert out["e_f_g_distinct"] == 3
    assert out["locals"] == [None, None, None]
    assert out["waiters_ended"] == out["waiters"]
    assert out["idle_after_waiters"] == out["idle_handlers"]
    assert out["thrown_dead"] is True
    assert out["idle_after_throw"] == [out["idle_handlers"], out["idle_handlers"] - 1]
    assert out["last"] == ["after-throw:start", "after-throw:end"]
