"""``engineio.json`` with its JSON decoder and encoder made once (core: engine-free; each
engine's worker calls :func:`install` once at boot, before it loads the app).

``engineio.json`` is the JSON module python-socketio's and python-engineio's packet classes
use (their ``Packet.json``) unless the app gives its server its own (``json=``). Its ``loads``
calls ``json.loads(s, parse_int=_safe_int)`` (its guard against huge integers) for every
packet decoded, and python-socketio calls its ``dumps`` (``json.dumps``) as
``dumps(data, separators=(",", ":"))`` for every packet encoded. With arguments other than the
defaults the standard library builds a new ``JSONDecoder`` / ``JSONEncoder`` (and scanner) on
every call: ~2.5 and ~0.7 µs of an echo's ~60-80 (``timeit``), 3-5% of a worker's samples
under an echo load (docs/benchmarks-optimizations.md). :func:`install` gives the module a
``loads`` and a ``dumps`` that use one decoder and one encoder made with those same arguments
for exactly those calls, and hand every other call to the originals, so every result and
every error is the original's.

Why the module and not each packet: python-socketio encodes the packets it sends itself (an
emit, a broadcast), so only the module reaches the encoder; and an app that gave its server
``json=`` has ``Packet.json`` pointing at its own module, which this never touches (that
app's packets never reach ``engineio.json``). Anyone else calling ``engineio.json.loads`` /
``dumps`` gets the same results as before.
"""

from __future__ import annotations

import json
from typing import Any

import engineio.json

# Set on the replacements, so that a second install (a second server, a test) is a no-op.
_MARK = "_sioctl_reused_codec"
COMPACT = (",", ":")
# What the bytes a worker hears from Redis open with: an object (one message) or an array (a
# worker channel's merged messages, worker/messaging/envelope.py).
OPENERS = (b"{", b"[")


def install(module: Any = engineio.json) -> None:
    """Give ``module`` (``engineio.json``) a ``loads`` with one ``JSONDecoder(parse_int=
    module._safe_int)`` and a ``dumps`` with one ``JSONEncoder(separators=(",", ":"))``;
    once per process (later calls change nothing)."""
    if not getattr(module.loads, _MARK, False):
        module.loads = reusing_decoder(module.loads, module._safe_int)
    if not getattr(module.dumps, _MARK, False):
        module.dumps = reusing_encoder(module.dumps)


def reusing_decoder(original: Any, parse_int: Any) -> Any:
    """``original`` (``engineio.json.loads``: ``json.loads`` with ``parse_int``) with one
    ``JSONDecoder(parse_int=parse_int)`` for a plain string, which is what ``json.loads``
    decodes it with, and for bytes that open a JSON object or array (``{`` or ``[``, then a
    byte that is not 0: a worker's message, or messages, heard from Redis), which
    ``json.loads`` decodes as UTF-8 first (``json.detect_encoding``) and then the same way;
    other calls (other bytes, keyword arguments, a byte-order mark, which ``json.loads``
    refuses with its own message) go to ``original``."""
    decode = json.JSONDecoder(parse_int=parse_int).decode

    def loads(s: Any, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs:
            return original(s, *args, **kwargs)
        if type(s) is bytes and s[:1] in OPENERS and s[1:2] != b"\0":
            return decode(s.decode("utf-8", "surrogatepass"))
        if type(s) is not str or s.startswith("\ufeff"):
            return original(s, *args, **kwargs)
        return decode(s)

    setattr(loads, _MARK, True)
    return loads


def reusing_encoder(original: Any) -> Any:
    """``original`` (``json.dumps``) with one ``JSONEncoder(separators=(",", ":"))`` for the
    call python-socketio makes, ``dumps(obj, separators=(",", ":"))``, which is what
    ``json.dumps`` encodes it with; any other call goes to ``original``."""
    encode = json.JSONEncoder(separators=COMPACT).encode

    def dumps(obj: Any, *args: Any, **kwargs: Any) -> Any:
        if args or len(kwargs) != 1 or kwargs.get("separators") != COMPACT:
            return original(obj, *args, **kwargs)
        return encode(obj)

    setattr(dumps, _MARK, True)
    return dumps
