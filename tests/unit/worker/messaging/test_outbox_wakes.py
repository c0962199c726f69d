"""The publisher's queue wakes its sending task once per burst (worker/messaging/outbox.py):
the sender waits only on an empty queue and looks at the queue again after each batch."""

from __future__ import annotations

import logging

from sioctl.worker.messaging.outbox import Outbox


class CountingOutbox(Outbox):
    def __init__(self) -> None:
        super().__init__(logging.getLogger("test"), max_queue=4)
        self.wakes = 0

    def _wake_sender(self) -> None:
        self.wakes += 1


def test_a_burst_wakes_the_sender_once_and_the_next_burst_again() -> None:
    outbox = CountingOutbox()
    for n in range(3):
        outbox.publish("c", f"m{n}")
    assert outbox.wakes == 1
    batch = outbox.next_batch()
    outbox.publish("c", "during the batch")  # the sender looks again after sending
    assert outbox.wakes == 1
    outbox.sent(batch, [1] * len(batch))
    assert [args[2] for args in outbox.queue] == ["during the batch"]
    outbox.sent(outbox.next_batch(), [1])
    outbox.publish("c", "later")
    assert outbox.wakes == 2


def test_a_full_queue_still_keeps_the_newest() -> None:
    outbox = CountingOutbox()
    for n in range(6):
        outbox.publish("c", f"m{n}")
    assert [args[2] for args in outbox.queue] == ["m2", "m3", "m4", "m5"]
    assert outbox.stats.dropped == 2
