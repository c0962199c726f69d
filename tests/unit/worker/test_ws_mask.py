"""Websocket unmasking (worker/ws_mask.py) against RFC 6455's definition, byte for byte."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sioctl.worker.ws_mask import PIECE, apply_mask


def masked_by_definition(data: bytes, mask: tuple[int, ...], length: int, offset: int) -> bytes:
    # RFC 6455, section 5.3: "Octet i of the transformed data is the XOR of octet i of the
    # original data with octet at index i modulo 4 of the masking key" (shifted by the bytes of
    # the frame already read, as eventlet passes it).
    return bytes(data[i] ^ mask[(offset + i) % 4] for i in range(length))


@given(
    data=st.binary(max_size=2048),
    mask=st.tuples(*[st.integers(0, 255)] * 4),
    offset=st.integers(0, 10_000),
)
def test_apply_mask_matches_the_definition(data: bytes, mask: tuple[int, ...], offset: int) -> None:
    assert apply_mask(data, mask, offset=offset) == masked_by_definition(
        data, mask, len(data), offset
    )


@given(data=st.binary(min_size=1, max_size=512), mask=st.tuples(*[st.integers(0, 255)] * 4))
def test_apply_mask_takes_length_bytes(data: bytes, mask: tuple[int, ...]) -> None:
    length = len(data) // 2
    assert apply_mask(data, mask, length=length) == masked_by_definition(data, mask, length, 0)


def test_masking_twice_restores_the_payload() -> None:
    payload = bytes(range(256)) * 300
    mask = (0x12, 0x34, 0x56, 0x78)
    assert apply_mask(apply_mask(payload, mask), mask) == payload


# No deadline: the definition's byte loop over 128 KiB is slow on a loaded machine.
@settings(deadline=None, max_examples=20)
@given(
    extra=st.integers(0, 9),
    mask=st.tuples(*[st.integers(0, 255)] * 4),
    offset=st.integers(0, 7),
)
def test_apply_mask_in_pieces_matches_the_definition(
    extra: int, mask: tuple[int, ...], offset: int
) -> None:
    """Past PIECE bytes the payload is unmasked piece by piece: the same bytes."""
    data = bytes((i * 7 + 3) % 256 for i in range(2 * PIECE + extra))
    length = len(data) - extra // 2
    assert apply_mask(data, mask, length=length, offset=offset) == masked_by_definition(
        data, mask, length, offset
    )
