"""How deeply JSON-like data nests, measured without recursion.

Incoming Socket.IO arguments are decoded by the C JSON parser, which copes with ~900 levels, but
python-socketio walks outgoing data recursively (``Packet.data_is_binary``, two Python frames a
level) and so does most application code: a 1.8 KB payload of 900 nested arrays, echoed or
forwarded, ends in RecursionError and a traceback of thousands of lines. Checking the depth of
what arrives, with a loop, keeps such data out before anything recurses over it.
"""

from __future__ import annotations

from typing import Any

# Levels of lists/dicts accepted in one event's arguments. Real payloads stay far below; the
# deepest data python-socketio then emits costs it ~2 frames a level, well inside Python's
# default recursion limit of 1000 whatever the caller's stack.
MAX_DEPTH = 64


def deeper_than(data: Any, limit: int = MAX_DEPTH) -> bool:
    """True when ``data`` holds lists/dicts nested more than ``limit`` levels (a bare list is
    one level; scalars are zero). Stops as soon as the limit is passed; never recurses."""
    if not isinstance(data, (list, dict)):
        return False
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, (list, dict)):
                stack.append((child, depth + 1))
    return False


def text_may_nest_deeper(text: str | bytes, limit: int = MAX_DEPTH) -> bool:
    """False when encoded JSON ``text`` cannot nest more than ``limit`` levels: it opens no more
    than ``limit`` arrays and objects in all (counted at C speed, strings included). True means
    only that :func:`deeper_than` must look at the decoded data."""
    if isinstance(text, bytes):
        return text.count(b"[") + text.count(b"{") > limit
    return text.count("[") + text.count("{") > limit
