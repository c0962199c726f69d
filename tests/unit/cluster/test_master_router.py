"""The master's router (cluster/router.py) in process: real listening and client sockets, a real
SOCK_SEQPACKET channel read by the test in the worker's place, a reactor on a fake clock.

The router needs no worker process to be tested: what it reads of a worker is its state, its
channel and its slot. The process behind it here is a placeholder (``sleep``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import selectors
import socket
import subprocess
from collections.abc import Iterator

import pytest

from sioctl.cluster import channel
from sioctl.cluster.client_address import TrustedProxies
from sioctl.cluster.inspector import Inspector
from sioctl.cluster.reactor import Reactor
from sioctl.cluster.router import EMFILE_PAUSE, Router
from sioctl.cluster.slots import Slot, slot_for_address
from sioctl.cluster.worker_process import READY, WorkerProcess


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(name="router")
def router_fixture() -> Iterator[Router]:
    reactor = Reactor(FakeClock())
    slots = [Slot(0, pending_limit=100)]
    router = Router(reactor, slots, Inspector(False, TrustedProxies([])), 1000)
    router.open(["127.0.0.1:0"], 64)
    router.start_accepting()
    try:
        yield router
    finally:
        router.release()
        for slot in slots:
            if slot.worker is not None:
                slot.worker.process.kill()
                slot.worker.process.wait()
                slot.worker.close_channel()
        reactor.close()


def ready_worker(router: Router) -> WorkerProcess:
    """A ready worker in slot 0 whose channel the test reads (non-blocking, as a worker's)."""
    master_end, worker_end = channel.socketpair()
    worker_end.setblocking(False)
    process = subprocess.Popen(["sleep", "30"])
    worker = WorkerProcess(0, process, master_end, worker_end)
    worker.state = READY
    router.slots[0].worker = worker
    router.reactor.watch(master_end, lambda chan, mask: router.on_channel_writable(worker))
    return worker


def connect(router: Router, count: int) -> list[socket.socket]:
    port = router.listeners[0].getsockname()[1]
    clients = []
    for _ in range(count):
        client = socket.create_connection(("127.0.0.1", port))
        clients.append(client)
    return clients


def turn(router: Router) -> None:
    router.reactor.run_once(lambda signum: None, most=0.05)


def received(worker: WorkerProcess) -> int:
    """Read every hand-off waiting in the worker's end of the channel; returns how many."""
    assert worker.worker_end is not None
    count = 0
    with contextlib.suppress(BlockingIOError):
        while True:
            data, fds, _, _ = socket.recv_fds(worker.worker_end, channel.MAX_MESSAGE, 4)
            assert channel.decode(data)["t"] == channel.CONN
            for fd in fds:
                os.close(fd)
            count += 1
    return count


def test_connections_wait_for_a_worker_then_go_to_it(router: Router) -> None:
    clients = connect(router, 5)
    while len(router.slots[0].pending) < 5:
        turn(router)
    worker = ready_worker(router)
    router.flush(router.slots[0])
    assert (received(worker), len(router.slots[0].pending), router.slots[0].handoffs) == (5, 0, 5)
    for client in clients:
        client.close()


def test_a_full_channel_keeps_the_rest_queued_until_it_drains(router: Router) -> None:
    worker = ready_worker(router)
    slot = router.slots[0]
    # More than a SOCK_SEQPACKET channel holds before send_fds would block.
    clients: list[socket.socket] = []
    got = 0
    while not slot.pending:  # until the channel is full and the rest waits, watched for room
        clients += connect(router, 60)
        while slot.handoffs + len(slot.pending) < len(clients):
            turn(router)
    key = router.reactor.selector.get_key(worker.channel)
    assert key.events == selectors.EVENT_READ | selectors.EVENT_WRITE
    while slot.pending or got < len(clients):
        got += received(worker)
        turn(router)
    assert got == len(clients) == slot.handoffs
    assert router.reactor.selector.get_key(worker.channel).events == selectors.EVENT_READ
    for client in clients:
        client.close()


def test_running_out_of_descriptors_pauses_accepting_then_resumes(
    router: Router, caplog: pytest.LogCaptureFixture
) -> None:
    clients = connect(router, 1)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowest_free = os.dup(0)
    os.close(lowest_free)
    try:
        # No new descriptor can be made: accept fails with EMFILE.
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
        with caplog.at_level(logging.INFO, logger="sioctl.master"):
            turn(router)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert not router.listening
    assert "cannot accept: Too many open files; pausing for 0.5s" in caplog.text
    clock = router.reactor.clock
    assert router.reactor.deadline("resume accepting") == clock() + EMFILE_PAUSE
    assert isinstance(clock, FakeClock)
    clock.now += EMFILE_PAUSE
    with caplog.at_level(logging.INFO, logger="sioctl.master"):
        turn(router)  # the deadline: accepting again
        turn(router)  # the waiting client
    assert router.listening and "accepting again" in caplog.text
    assert len(router.slots[0].pending) == 1
    for client in clients:
        client.close()


def test_closing_closes_what_waits_and_accepts_no_more(router: Router) -> None:
    clients = connect(router, 3)
    while len(router.slots[0].pending) < 3:
        turn(router)
    router.close()
    assert not router.slots[0].pending and not router.listeners
    for client in clients:
        assert client.recv(1) == b""  # closed by the master
        client.close()
    router.start_accepting()
    assert not router.listening


@pytest.mark.timeout(10)
def test_what_a_dead_worker_never_read_goes_back_to_the_head_of_its_queue(
    router: Router,
) -> None:
    worker = ready_worker(router)
    slot = router.slots[0]
    clients = connect(router, 3)
    while slot.handoffs < 3:
        turn(router)
    worker.process.kill()
    worker.process.wait()
    # Its end was never made non-blocking by a worker that died early: taking back must not
    # wait on it once it is empty.
    assert worker.worker_end is not None
    worker.worker_end.setblocking(True)
    router.take_back(worker)
    assert (len(slot.pending), slot.requeued) == (3, 3)
    router.take_back(worker)  # nothing left: returns at once
    assert len(slot.pending) == 3
    taken = [slot.pending.pop() for _ in range(3)]
    assert [address for _, address in taken] == [client.getsockname() for client in clients]
    for conn, _ in taken:
        conn.close()
    for client in clients:
        client.close()


def test_removing_slots_routes_their_waiting_connections_again(router: Router) -> None:
    # Three slots, no worker yet: connections from an address of slot 2 wait there.
    router.slots += [Slot(1, pending_limit=100), Slot(2, pending_limit=100)]
    router.routing = 3
    router.set_pending_total(100)
    assert router.pending_total_limit == 300
    source = next(f"127.0.0.{i}" for i in range(2, 50) if slot_for_address(f"127.0.0.{i}", 3) == 2)
    port = router.listeners[0].getsockname()[1]
    clients = [socket.create_connection(("127.0.0.1", port), source_address=(source, 0))
               for _ in range(4)]
    while len(router.slots[2].pending) < 4:
        turn(router)
    # Down to one slot: whatever waited in the others moves to slot 0, nothing is closed.
    router.resize(1)
    del router.slots[1:]
    router.set_pending_total(100)
    assert (len(router.slots[0].pending), router.pending_total_limit) == (4, 100)
    worker = ready_worker(router)
    router.flush(router.slots[0])
    assert received(worker) == 4
    for client in clients:
        client.close()


def test_a_worker_whose_slot_was_removed_has_no_slot(router: Router) -> None:
    process = subprocess.Popen(["sleep", "30"])
    master_end, worker_end = channel.socketpair()
    removed = WorkerProcess(3, process, master_end, worker_end)
    try:
        assert router.slot_of(removed) is None
        router.on_channel_writable(removed)  # a late event for it: no IndexError
    finally:
        process.kill()
        process.wait()
        removed.close_channel()
