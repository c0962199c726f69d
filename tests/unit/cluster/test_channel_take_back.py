"""Taking back a dead worker's unread connections never blocks the master.

A worker that dies before eventlet has made its channel end non-blocking (an app that fails to
import) leaves the end, shared with the master's copy, in blocking mode. ``take_back`` must then
still return at once: Python 3.11's ``socket.recv_fds`` drops its flags argument
(python/cpython#128881), so MSG_DONTWAIT has to reach recvmsg another way.
"""

from __future__ import annotations

import socket
import threading

from sioctl.cluster import channel


def _take_back_in_thread(
    master_end: socket.socket, worker_end: socket.socket
) -> tuple[bool, list[list[tuple[socket.socket, tuple[str, int]]]]]:
    """(whether take_back was still blocked after 5 s, what it returned)."""
    result: list[list[tuple[socket.socket, tuple[str, int]]]] = []
    thread = threading.Thread(target=lambda: result.append(channel.take_back(worker_end)),
                              daemon=True)
    thread.start()
    thread.join(5.0)
    blocked = thread.is_alive()
    if blocked:
        master_end.close()  # end-of-file ends the blocked recv, so the thread does not linger
        thread.join(5.0)
    return blocked, result


def test_an_empty_blocking_end_gives_nothing_at_once() -> None:
    master_end, worker_end = channel.socketpair()
    try:
        assert worker_end.getblocking()
        blocked, result = _take_back_in_thread(master_end, worker_end)
        assert not blocked, "take_back waited on an empty channel"
        assert result == [[]]
    finally:
        master_end.close()
        worker_end.close()


def test_unread_connections_come_back_then_it_returns() -> None:
    master_end, worker_end = channel.socketpair()
    client, server = socket.socketpair()
    try:
        message = channel.encode({"t": channel.CONN, "addr": ["127.0.0.2", 40000]})
        socket.send_fds(master_end, [message], [server.fileno()])
        blocked, result = _take_back_in_thread(master_end, worker_end)
        assert not blocked, "take_back waited after the last unread connection"
        [[(conn, addr)]] = result
        assert addr == ("127.0.0.2", 40000)
        conn.sendall(b"x")
        assert client.recv(1) == b"x"
        conn.close()
    finally:
        for sock in (master_end, worker_end, client, server):
            sock.close()
