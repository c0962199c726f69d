"""Which slot serves a client (cluster/slots.py): jump consistent hash of the packed address.

The figures docs/design.md quotes ("Routing") come from :func:`moved_fraction` on the 10k
addresses below: 4 → 5 workers moves 0.19 of them with the jump hash, 0.80 with ``crc32 % N``.
"""

from __future__ import annotations

import socket
import zlib

import pytest

from sioctl.cluster.slots import jump_hash, slot_for_address

# 10k addresses of one /16-ish range, as the clients behind one provider would look.
ADDRESSES = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(10_000)]


def modulo_slot(host: str, workers: int) -> int:
    """The slot choice sioctl made before the jump hash, for comparison."""
    return zlib.crc32(socket.inet_pton(socket.AF_INET, host)) % workers


def moved_fraction(choose: object, before: int, after: int) -> float:
    assert callable(choose)
    moved = sum(choose(a, before) != choose(a, after) for a in ADDRESSES)
    return moved / len(ADDRESSES)


@pytest.mark.parametrize("workers", [1, 2, 3, 4, 7, 8, 15])
def test_adding_a_worker_moves_addresses_only_to_the_new_slot(workers: int) -> None:
    for address in ADDRESSES:
        before = slot_for_address(address, workers)
        after = slot_for_address(address, workers + 1)
        assert after in (before, workers), (address, before, after)


def test_adding_a_worker_moves_about_one_in_n_against_most_with_a_modulo() -> None:
    jump = moved_fraction(slot_for_address, 4, 5)
    modulo = moved_fraction(modulo_slot, 4, 5)
    # The ideal is 1/5 = 0.20 for the jump hash, 4/5 = 0.80 for the modulo.
    assert 0.17 < jump < 0.23, jump
    assert modulo > 0.75, modulo


def test_the_slots_share_the_addresses_evenly() -> None:
    for workers in (2, 5, 8):
        counts = [0] * workers
        for address in ADDRESSES:
            counts[slot_for_address(address, workers)] += 1
        share = len(ADDRESSES) / workers
        assert all(abs(count - share) < 0.1 * share for count in counts), (workers, counts)


def test_one_worker_takes_everything_and_ipv4_mapped_hashes_as_ipv4() -> None:
    assert {slot_for_address(a, 1) for a in ADDRESSES[:100]} == {0}
    for address in ADDRESSES[:200]:
        assert slot_for_address(f"::ffff:{address}", 6) == slot_for_address(address, 6)
    assert 0 <= slot_for_address("2001:db8::1", 6) < 6


def test_jump_hash_reference_values_and_bounds() -> None:
    # What the paper's C++ JumpConsistentHash returns for these keys (compiled and run once):
    # the function is pinned, so every node and sioctl version send an address to one slot.
    keys = (0, 1, 2, 3, 12345, 2**32 - 1, 2**64 - 1)
    assert [jump_hash(key, 10) for key in keys] == [0, 6, 6, 8, 1, 5, 9]
    assert [jump_hash(key, 1000) for key in keys] == [0, 549, 338, 961, 938, 875, 313]
    assert [jump_hash(key, 1) for key in keys] == [0] * len(keys)
    assert all(0 <= jump_hash(key, 10) < 10 for key in range(1000))
    with pytest.raises(ValueError):
        jump_hash(1, 0)
