"""The load scenarios, each run against one started system; each returns a :class:`Result`.

Every loop here is bounded in count and in time and targets 127.0.0.1 only; clients leave from
many 127.x source addresses so that the systems' stickiness (hash of the client IP) spreads
them over the workers. Latencies are stamped with one clock of this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import procstat
from eio_client import EventHandler, Recorder, Session, connect, now
from systems import System

HOST = "127.0.0.1"
# Answers slower than this count as lost (and end the scenario's waits).
CALL_TIMEOUT = 10.0
# A session not connected within this is a failed attempt. Far above a normal connect (tens of
# ms at worst here), short enough that one hung connection does not stall a phase for long.
CONNECT_TIMEOUT = 3.0
# Clients a phase may lack (some connects failed) and still run, as a share of those wanted.
ENOUGH = 0.9


@dataclass
class Plan:
    """How much load each scenario offers; ``quick()`` and ``full()`` are the two presets."""

    seconds: float              # length of each timed load phase
    handoff_concurrency: int    # connections being opened at once in the hand-off scenario
    echo_clients: int
    echo_rate: float            # offered msgs/s of the fixed-load echo
    targeted_pairs: int         # sender/receiver pairs on different workers
    # Emits each sender keeps in flight: enough that the worker serving the senders never
    # waits for the load generator, which shares its CPUs (with 2 it ran dry at 2 workers and
    # the figure followed the generator's placement: docs/benchmarks-optimizations.md, s32).
    targeted_window: int
    broadcast_clients: int
    broadcasts: int
    broadcast_window: int       # broadcasts requested and not yet acknowledged, at most
    idle_counts: tuple[int, ...]
    settle: float               # pause after each phase, for the servers to tear down
    max_messages: int = 200_000  # a hard cap per phase, whatever the rate

    @classmethod
    def quick(cls) -> Plan:
        return cls(seconds=1.0, handoff_concurrency=16, echo_clients=20, echo_rate=500,
                   targeted_pairs=8, targeted_window=4, broadcast_clients=200, broadcasts=100,
                   broadcast_window=4, idle_counts=(1000,), settle=0.2)

    @classmethod
    def full(cls) -> Plan:
        return cls(seconds=5.0, handoff_concurrency=32, echo_clients=50, echo_rate=1000,
                   targeted_pairs=16, targeted_window=4, broadcast_clients=1000, broadcasts=100,
                   broadcast_window=4, idle_counts=(1000, 10000), settle=0.5)


@dataclass
class Result:
    """What one scenario measured on one system: named metrics, CPU usage, remarks."""

    scenario: str
    metrics: dict[str, float]
    usage: procstat.Usage
    notes: list[str] = field(default_factory=list)


def source_ips() -> Iterator[str]:
    """Client source addresses 127.1.0.1, 127.1.0.2, ... (1016 of them), round and round."""
    pool = [f"127.1.{a}.{b}" for a in range(4) for b in range(1, 255)]
    return itertools.cycle(pool)


def percentile(values: list[float], share: float) -> float:
    """The ``share`` (0..1) percentile of ``values`` (nearest rank); NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(0, math.ceil(share * len(ordered)) - 1)
    return ordered[rank]


class Meter:
    """CPU of the system's server processes and of this process, from ``start()`` on."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.roles = system.roles()
        self.before = procstat.snapshot(self.roles)

    def stop(self) -> procstat.Usage:
        """What was spent since the meter was made."""
        return procstat.usage(self.before, procstat.snapshot(self.roles))


async def open_sessions(port: int, count: int, ips: Iterator[str], deadline: float,
                        on_event: EventHandler | None = None,
                        concurrency: int = 100,
                        kind: type[Session] = Session) -> tuple[list[Session], int]:
    """Up to ``count`` connected sessions (each a ``kind``), ``concurrency`` connecting at
    once, until the ``deadline`` (a ``now()`` value); returns (sessions, failed attempts).
    Stops at the first run of failures so that a system at its limit is not hammered until
    the deadline."""
    sessions: list[Session] = []
    failures = 0
    pending = itertools.count()

    async def opener() -> None:
        nonlocal failures
        while next(pending) < count and now() < deadline and failures < 50:
            try:
                remaining = max(0.5, min(CONNECT_TIMEOUT, deadline - now()))
                sessions.append(await connect(HOST, port, next(ips), remaining, on_event,
                                              kind))
            except (OSError, ConnectionError, asyncio.TimeoutError):
                failures += 1

    await asyncio.gather(*(opener() for _ in range(min(concurrency, count))))
    return sessions, failures


def _check_enough(sessions: list[Session], wanted: int) -> list[str]:
    """Raise when fewer than ENOUGH of ``wanted`` sessions connected; else a note on any
    shortfall (a phase runs with the clients it got)."""
    if len(sessions) < ENOUGH * wanted:
        close_all(sessions)
        raise RuntimeError(f"only {len(sessions)} of {wanted} clients connected")
    return [] if len(sessions) == wanted else [f"{len(sessions)} of {wanted} clients connected"]


def close_all(sessions: list[Session]) -> None:
    """Reset every session (RST: the next scenario finds no TIME_WAIT pile)."""
    for session in sessions:
        session.abort()


async def settle(seconds: float = 0.5) -> None:
    """Pause ``seconds``: the servers finish what the last step left them to do."""
    await asyncio.sleep(seconds)


# The servers count as quiet below this much CPU (cores, all processes together), and are
# waited for at most QUIET_WAIT seconds.
QUIET_CORES = 0.15
QUIET_WAIT = 60.0


async def quiesce(system: System, minimum: float) -> float:
    """Wait at least ``minimum`` seconds, then until the server processes are quiet (they may
    still be tearing down thousands of closed sessions, which would slow the next phase's
    connects); returns the seconds waited. Bounded by QUIET_WAIT."""
    started = now()
    await asyncio.sleep(minimum)
    roles = system.roles()
    while now() - started < QUIET_WAIT:
        before = procstat.snapshot(roles)
        await asyncio.sleep(0.25)
        if procstat.usage(before, procstat.snapshot(roles)).server < QUIET_CORES * 0.25:
            break
    return now() - started


# --------------------------------------------------------------------------- hand-off


async def handoff(system: System, plan: Plan) -> Result:
    """New Socket.IO connections per second (TCP, websocket upgrade, Engine.IO open, namespace
    connect, close), ``handoff_concurrency`` at a time, for ``seconds``; and the CPU of the
    process that owns the listening socket (master / primary / nginx) per connection."""
    ips = source_ips()
    latencies: list[float] = []
    failures = 0
    end = now() + plan.seconds
    budget = itertools.count()

    async def connector() -> None:
        nonlocal failures
        while now() < end and next(budget) < plan.max_messages:
            started = now()
            try:
                session = await connect(HOST, system.port, next(ips), CONNECT_TIMEOUT)
            except (OSError, ConnectionError, asyncio.TimeoutError):
                failures += 1
                continue
            latencies.append(now() - started)
            session.close()

    meter = Meter(system)
    await asyncio.gather(*(connector() for _ in range(plan.handoff_concurrency)))
    used = meter.stop()
    await quiesce(system, plan.settle)
    done = len(latencies)
    front = used.roles.get("front", 0.0)
    metrics = {
        "conn/s": done / used.seconds,
        "p50 ms": percentile(latencies, 0.5) * 1e3,
        "p99 ms": percentile(latencies, 0.99) * 1e3,
        "front µs/conn": front / done * 1e6 if done and "front" in used.roles else math.nan,
        "server µs/conn": used.server / done * 1e6 if done else math.nan,
        "failed": float(failures),
    }
    return Result("handoff", metrics, used)


# ------------------------------------------------------------------------------- echo


async def echo(system: System, plan: Plan, rate: float | None, text: str = "hello") -> Result:
    """Echo with ack from ``echo_clients`` clients: at ``rate`` msgs/s offered in all (spread
    evenly over time and clients), or, with ``rate`` None, at saturation (every client sends its
    next message as soon as the previous one is answered). ``text`` is the message's text."""
    ips = source_ips()
    sessions, _ = await open_sessions(system.port, plan.echo_clients, ips, now() + 30.0)
    latencies: list[float] = []
    timeouts = 0
    payload = {"text": text, "n": 42}
    try:
        _check_enough(sessions, plan.echo_clients)
        meter = Meter(system)
        started = now()
        end = started + plan.seconds
        if rate is None:
            async def client(session: Session) -> None:
                nonlocal timeouts
                for _ in range(plan.max_messages):
                    if now() >= end:
                        return
                    sent = now()
                    try:
                        await asyncio.wait_for(session.call("echo", payload), CALL_TIMEOUT)
                    except (asyncio.TimeoutError, ConnectionError):
                        timeouts += 1
                        return
                    latencies.append(now() - sent)

            await asyncio.gather(*(client(s) for s in sessions))
        else:
            timeouts = await _paced_echo(sessions, payload, rate, end, plan.max_messages,
                                         latencies)
        used = meter.stop()
    finally:
        close_all(sessions)
    await quiesce(system, plan.settle)
    answered = len(latencies)
    metrics = {
        "msgs/s": answered / used.seconds,
        "p50 ms": percentile(latencies, 0.5) * 1e3,
        "p99 ms": percentile(latencies, 0.99) * 1e3,
        "server µs/msg": used.server / answered * 1e6 if answered else math.nan,
        "unanswered": float(timeouts),
    }
    if rate is not None:
        metrics["offered/s"] = rate
    return Result("echo-fixed" if rate is not None else "echo-saturation", metrics, used)


def _recorder(latencies: list[float], stamp: float) -> Callable[[asyncio.Future[Any]], None]:
    """A done-callback that records the latency of a call sent at ``stamp`` if it succeeded."""

    def record(future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is None:
            latencies.append(now() - stamp)

    return record


async def _paced_echo(sessions: list[Session], payload: Any, rate: float, end: float,
                      cap: int, latencies: list[float]) -> int:
    """Send echo calls at ``rate`` per second round the sessions until ``end``, then wait for
    the answers (bounded); returns how many went unanswered."""
    pending: set[asyncio.Future[Any]] = set()
    started = now()
    sent = 0
    turn = itertools.cycle(sessions)
    while sent < cap:
        current = now()
        if current >= end:
            break
        due = min(cap, int((current - started) * rate) + 1)
        while sent < due:
            stamp = now()
            future = next(turn).call("echo", payload)
            future.add_done_callback(_recorder(latencies, stamp))
            pending.add(future)
            future.add_done_callback(pending.discard)
            sent += 1
        # Wake a few times per message interval: the schedule, not the loop, sets the rate.
        await asyncio.sleep(min(0.005, 1.0 / rate))
    if pending:
        await asyncio.wait(list(pending), timeout=CALL_TIMEOUT)
    return sum(1 for f in pending if not f.done())


# --------------------------------------------------------------------------- targeted


async def _sessions_by_worker(system: System, wanted: int, ips: Iterator[str],
                              on_event: EventHandler) -> dict[int, list[Session]]:
    """Connect clients (each a :class:`Recorder`, so that any of them can be made a recording
    receiver) until two workers have ``wanted`` each (one worker: 2 × ``wanted``); returns
    {worker pid: sessions}. Bounded in attempts and time."""
    by_pid: dict[int, list[Session]] = {}
    deadline = now() + 30.0
    for _ in range(wanted * 2 * 8):
        full = [pid for pid, group in by_pid.items() if len(group) >= wanted]
        if (len(full) >= 2 or (system.workers == 1 and full
                               and len(by_pid[full[0]]) >= 2 * wanted)):
            break
        if now() > deadline:
            break
        try:
            session = await connect(HOST, system.port, next(ips), CONNECT_TIMEOUT, on_event,
                                    Recorder)
        except (OSError, ConnectionError, asyncio.TimeoutError):
            continue  # counted by the hand-off scenario; here we only need enough clients
        who = await asyncio.wait_for(session.call("whoami", None), CALL_TIMEOUT)
        by_pid.setdefault(int(who["pid"]), []).append(session)
    return by_pid


def _place(by_pid: dict[int, list[Session]], system: System, pairs: int,
           crossed: bool) -> tuple[list[Session], list[Session], list[str]]:
    """(senders, receivers, notes): with several workers every sender on one worker and every
    receiver on another, or with ``crossed`` half the senders on each, sending to the other;
    with one worker (or too few addresses reaching a second one) all on the same one."""
    groups = sorted(by_pid.values(), key=len, reverse=True)
    if system.workers > 1 and len(groups) >= 2 and len(groups[1]) >= pairs:
        one, other = groups[0], groups[1]
        half = pairs // 2 if crossed else 0
        return one[half:pairs] + other[:half], other[half:pairs] + one[:half], []
    if groups and len(groups[0]) >= 2 * pairs:
        notes = []
        if system.workers > 1:
            notes.append("sender and receiver on the same worker: too few addresses reached a "
                         "second one")
        return groups[0][:pairs], groups[0][pairs:2 * pairs], notes
    raise RuntimeError(f"could not place {pairs} pairs: {[len(g) for g in groups]}")


class _Requests:
    """The senders of the targeted scenario: ``window`` ``send_to`` requests in flight per
    pair until ``end`` (at most ``cap`` in all), each next one sent from the ack of the one
    before (a callback: no task, future or timer per request). A request is written from its
    pair's template with only its counter and send time spliced in, and its ack is counted
    without being decoded: the load generator's CPU per message is what the 2-worker rate
    shares the cores with."""

    def __init__(self, end: float, cap: int) -> None:
        self.end, self.cap = end, cap
        self.counter = itertools.count()
        self.acked = 0
        self.in_flight = 0
        # Done when no request is in flight any more (after ``end``, or every session lost).
        self.idle: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def start(self, p: int, sender: Session, to: str, window: int) -> None:
        """Put ``window`` requests of pair ``p`` (``sender`` → the session ``to``) in flight;
        each ack sends the next until ``end``."""
        head = b'["send_to",{"to":%s,"data":{"p":%d,"i":' % (json.dumps(to).encode(), p)

        def send() -> bool:
            i, t = next(self.counter), now()
            if i >= self.cap or t >= self.end:
                return False
            self.in_flight += 1
            # %r of a float is its repr, which is what json.dumps writes.
            sender.call_encoded(b'%s%d,"t":%r}}]' % (head, i, t), answered)
            return True

        def answered(arguments: str | None) -> None:
            self.in_flight -= 1
            if arguments is not None:  # None: the connection was lost, this slot ends
                self.acked += 1
                if send():
                    return
            if not self.in_flight and not self.idle.done():
                self.idle.set_result(None)

        for _ in range(window):
            send()
        if not self.in_flight and not self.idle.done():
            self.idle.set_result(None)


# The start of a 'msg' event's packet, which a recording receiver counts as it comes.
MSG = b'42["msg"'


async def targeted(system: System, plan: Plan, crossed: bool = False) -> Result:
    """Emits to one client served by another worker (``send_to``: the server emits 'msg' to the
    receiver's sid): each of ``targeted_pairs`` senders keeps ``targeted_window`` requests in
    flight for ``seconds``. Measured at the receivers: delivered msgs/s, latency from the
    sender's request to the arrival, loss (acknowledged requests never delivered).

    With several workers every sender is on one worker and every receiver on another: one
    worker only publishes and the other only delivers, so the rate is the slower half's.
    ``crossed`` puts half the senders on each of the two workers, each sending to a receiver on
    the other, as an app's traffic spreads: every message still crosses Redis, and each worker
    both publishes and delivers. With one worker both layouts are the same.

    The load generator's share is kept small: the receivers read what they get as it comes
    but parse it after the measurement (``eio_client.Recorder``: latency from each read's
    arrival time), and the senders write each request from a template and count its ack
    undecoded (:class:`_Requests`). At 2 workers the generator shares the 2 cores with the
    workers and redis-server, so what it spends lowers the 2-worker rate only."""
    ips = source_ips()
    latencies: list[float] = []
    seen: set[tuple[int, int]] = set()
    duplicates = 0
    last_arrival = 0.0

    def on_event(session: Session, name: str, data: Any) -> None:
        nonlocal duplicates, last_arrival
        if name != "msg" or not isinstance(data, dict):
            return
        arrived = session.arrival()
        last_arrival = max(last_arrival, arrived)  # replayed receiver by receiver
        key = (int(data["p"]), int(data["i"]))
        if key in seen:
            duplicates += 1
            return
        seen.add(key)
        latencies.append(arrived - data["t"])

    pairs = plan.targeted_pairs
    by_pid = await _sessions_by_worker(system, pairs, ips, on_event)
    everyone = [s for group in by_pid.values() for s in group]
    try:
        senders, receivers, notes = _place(by_pid, system, pairs, crossed)
        recorders = [r for r in receivers if isinstance(r, Recorder)]
        for receiver in recorders:
            receiver.record(MSG)
        meter = Meter(system)
        started = now()
        end = started + plan.seconds
        requests = _Requests(end, plan.max_messages)
        for p, (s, r) in enumerate(zip(senders, receivers, strict=True)):
            requests.start(p, s, r.sid, plan.targeted_window)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(requests.idle, plan.seconds + CALL_TIMEOUT)

        def arrived() -> tuple[int, float]:
            """Arrivals so far (parsed or counted, duplicates too), and when the last came."""
            return (len(seen) + duplicates + sum(r.marked for r in recorders),
                    max([last_arrival] + [r.last_marked for r in recorders]))

        # Wait for what is still on its way: until all arrived or 2 s without an arrival.
        drain_end = now() + CALL_TIMEOUT
        count, last = arrived()
        while count < requests.acked and now() < drain_end and now() - max(last, end) < 2:
            await asyncio.sleep(0.05)
            count, last = arrived()
        used = meter.stop()
        for receiver in recorders:
            receiver.replay()
        # Counted arrivals that were duplicates stand for none: wait on, parsing as they come.
        while len(seen) < requests.acked and now() < drain_end and now() - max(
                last_arrival, end) < 2:
            await asyncio.sleep(0.05)
    finally:
        close_all(everyone)
    await quiesce(system, plan.settle)
    delivered = len(seen)
    window = max(last_arrival, end) - started
    metrics = {
        "msgs/s": delivered / window if window > 0 else math.nan,
        "p50 ms": percentile(latencies, 0.5) * 1e3,
        "p99 ms": percentile(latencies, 0.99) * 1e3,
        "lost": float(max(0, requests.acked - delivered)),
        "duplicates": float(duplicates),
        "server µs/msg": used.server / delivered * 1e6 if delivered else math.nan,
        # The load generator's own CPU per message: at 2 workers it shares the 2 cores with
        # the workers and redis-server, so every µs of it lowers the 2-worker rate only.
        "generator µs/msg": used.own / delivered * 1e6 if delivered else math.nan,
    }
    return Result("targeted-crossed" if crossed else "targeted", metrics, used, notes)


# -------------------------------------------------------------------------- broadcast


# The start of a 'news' event's packet, which a recording receiver counts as it comes.
NEWS = b'42["news"'


async def broadcast(system: System, plan: Plan) -> Result:
    """Fan-out: ``broadcast_clients`` clients spread over the workers; one of them asks for
    ``broadcasts`` broadcasts, keeping ``broadcast_window`` requests unacknowledged at most.
    Measured at the clients: deliveries per second from the first request to the last
    arrival, and the latency of each delivery from its request; at the servers, their CPU per
    delivery.

    Every client but the one asking reads what it gets as it comes but parses it after the
    measurement (``eio_client.Recorder``): parsing 100,000 deliveries as they came took the
    load generator most of a core, on the 2 cores the servers ran on."""
    ips = source_ips()
    latencies: list[float] = []
    last_arrival = 0.0

    def on_event(session: Session, name: str, data: Any) -> None:
        nonlocal last_arrival
        if name == "news" and isinstance(data, dict):
            arrived = session.arrival()
            last_arrival = max(last_arrival, arrived)
            latencies.append(arrived - data["t"])

    sessions, _ = await open_sessions(system.port, plan.broadcast_clients, ips, now() + 60.0,
                                      on_event, kind=Recorder)
    receivers = [s for s in sessions[1:] if isinstance(s, Recorder)]
    try:
        notes = _check_enough(sessions, plan.broadcast_clients)
        await settle(2 * plan.settle)  # the workers finish registering the last sessions
        trigger = sessions[0]
        expected = plan.broadcasts * len(sessions)
        for receiver in receivers:
            receiver.record(NEWS)
        meter = Meter(system)
        started = now()
        in_flight = asyncio.Semaphore(plan.broadcast_window)

        async def request(i: int) -> None:
            async with in_flight:
                await asyncio.wait_for(trigger.call("broadcast", {"i": i, "t": now()}),
                                       CALL_TIMEOUT)

        await asyncio.gather(*(request(i) for i in range(plan.broadcasts)))
        requested = now()

        def arrived() -> tuple[int, float]:
            """Deliveries so far (parsed or counted), and when the last came."""
            return (len(latencies) + sum(r.marked for r in receivers),
                    max([last_arrival] + [r.last_marked for r in receivers]))

        count, last = arrived()
        while (count < expected and now() - requested < CALL_TIMEOUT
               and now() - max(last, requested) < 2):
            await asyncio.sleep(0.05)
            count, last = arrived()
        used = meter.stop()
        for receiver in receivers:
            receiver.replay()
    finally:
        close_all(sessions)
    await quiesce(system, plan.settle)
    delivered = len(latencies)
    window = max(last_arrival, requested) - started
    metrics = {
        "deliveries/s": delivered / window if window > 0 else math.nan,
        "p50 ms": percentile(latencies, 0.5) * 1e3,
        "p99 ms": percentile(latencies, 0.99) * 1e3,
        "lost": float(max(0, expected - delivered)),
        "server µs/delivery": used.server / delivered * 1e6 if delivered else math.nan,
    }
    return Result("broadcast", metrics, used, notes)


# ------------------------------------------------------------------------------- idle


def server_pss_kib(system: System) -> int:
    """PSS of every server-side process of ``system``, in KiB."""
    return sum(procstat.pss_kib(pid) for pids in system.roles().values() for pid in pids)


async def idle(system: System, plan: Plan, count: int) -> Result:
    """Hold ``count`` idle websocket sessions (or as many as the system takes within the time
    bound): server memory (PSS) per held connection, and CPU per connection opened."""
    ips = source_ips()
    # Memory is measured from the system as it started (the first idle phase runs first): a
    # heap that an earlier phase grew would hand its freed memory to these sessions unseen.
    if system.baseline_kib is None:
        system.baseline_kib = server_pss_kib(system)
    before_kib = system.baseline_kib
    meter = Meter(system)
    sessions, failures = await open_sessions(system.port, count, ips,
                                             now() + max(30.0, count / 100), concurrency=200)
    try:
        await settle(4 * plan.settle)  # the servers finish what each connect left them to do
        used = meter.stop()
        after_kib = server_pss_kib(system)
        held = sum(1 for s in sessions if s.is_open)
    finally:
        close_all(sessions)
    await quiesce(system, plan.settle)
    metrics = {
        "held": float(held),
        "KiB/conn": (after_kib - before_kib) / held if held else math.nan,
        "server MiB": after_kib / 1024,
        "server µs/conn": used.server / held * 1e6 if held else math.nan,
        "failed": float(failures),
    }
    notes = [] if held >= count else [f"held {held} of {count} ({failures} failed attempts)"]
    return Result(f"idle-{count // 1000}k", metrics, used, notes)


Scenario = Callable[[System, Plan], Any]


def scenarios(plan: Plan) -> list[tuple[str, Scenario]]:
    """The scenarios of a run, in the order each system goes through them: the smallest idle
    phase first, while the servers' memory is what a fresh start gives."""
    counts = sorted(plan.idle_counts)
    steps: list[tuple[str, Scenario]] = [(f"idle-{counts[0] // 1000}k", _idle_of(counts[0]))]
    steps += [
        ("handoff", handoff),
        ("echo-fixed", lambda s, p: echo(s, p, p.echo_rate)),
        ("echo-saturation", lambda s, p: echo(s, p, None)),
        ("targeted", targeted),
        ("targeted-crossed", lambda s, p: targeted(s, p, crossed=True)),
        ("broadcast", broadcast),
    ]
    # The larger idle phases last: tearing down 10k sessions keeps a worker busy for seconds,
    # and their memory is measured from the fresh system's anyway (see idle()).
    steps += [(f"idle-{count // 1000}k", _idle_of(count)) for count in counts[1:]]
    return steps


def _idle_of(count: int) -> Scenario:
    """The idle scenario at ``count`` connections."""

    def run(system: System, plan: Plan) -> Any:
        return idle(system, plan, count)

    return run
