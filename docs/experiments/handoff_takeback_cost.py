"""What taking back a dead worker's connections costs the master per hand-off (issue 13, item 7).

Compares the master's CPU time per connection handed over a SOCK_SEQPACKET channel for:

- ``plain``: send_fds, close our copy (the hand-off as it was, and as it is with the chosen
  design: the master keeps a copy of the worker's end and reads it only after the worker died);
- ``ack``: the alternative: keep a dup of every fd until the worker acknowledges it, then read
  the acknowledgement, decode it and close the dup.

The receiver is a forked plain-Python process (no eventlet) that takes each fd, closes it and
(for ``ack``) answers. Stand-in connections are socketpair ends, made before timing starts.

    python docs/experiments/handoff_takeback_cost.py [count]
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time


def receiver(end: socket.socket, ack: bool) -> None:
    while True:
        data, fds, _, _ = socket.recv_fds(end, 65536, 4)
        if not data:
            os._exit(0)
        for fd in fds:
            os.close(fd)
        if ack:
            n = json.loads(data)["n"]
            end.send(json.dumps({"t": "ack", "n": n}).encode())


def run(count: int, ack: bool) -> float:
    master, worker = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        master.close()
        receiver(worker, ack)
    worker.close()
    conns = [socket.socketpair() for _ in range(count)]
    unacked: dict[int, int] = {}
    start = time.process_time()
    for n, (a, _) in enumerate(conns):
        message = json.dumps({"t": "conn", "addr": ["127.0.0.2", 40000], "n": n}).encode()
        if ack:
            unacked[n] = os.dup(a.fileno())
        socket.send_fds(master, [message], [a.fileno()])
        a.close()
        if ack:
            # Read whatever acknowledgements are in, as the loop would between events.
            while True:
                try:
                    reply = master.recv(65536, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                os.close(unacked.pop(json.loads(reply)["n"]))
    while ack and unacked:
        reply = master.recv(65536)
        os.close(unacked.pop(json.loads(reply)["n"]))
    spent = time.process_time() - start
    master.close()
    os.waitpid(pid, 0)
    for _, b in conns:
        b.close()
    return spent / count * 1e6


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    for round_ in range(3):
        plain = run(count, ack=False)
        acked = run(count, ack=True)
        print(f"round {round_ + 1}: plain {plain:.1f} us/conn, ack {acked:.1f} us/conn "
              f"(x{acked / plain:.2f})")


if __name__ == "__main__":
    main()
