"""``POST /api/transportMessage`` bodies by content type: JSON, or a form
(``application/x-www-form-urlencoded``) carrying the same fields, as koa's body parser gave
them to the seed's server.

How a form carries the body: one form field per body field (``timestamp``, ``app``,
``target``, ``userId``, ``sign``, ``nonce``, ``message``), as an HTML form or jQuery's
``$.post(url, body)`` sends them. Form values are text, so ``timestamp`` is its decimal digits
(made an int) and ``message`` is the text as sent; ``message[key]=value`` fields build an
object (``message[a][b]`` nests, ``message[list][]`` appends), the bracket notation of the
``qs`` parser koa used (what jQuery sends for ``{message: {...}}``), at most 5 levels deep as
``qs`` does. A form body that is a JSON object as a whole (``curl -d '{...}'`` sends JSON
labelled as a form) is read as JSON, as this endpoint always did. Pure stdlib.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

JSON = "json"
FORM = "form"
# qs's default depth: deeper brackets are refused rather than flattened.
MAX_BRACKETS = 5
_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


class FormError(ValueError):
    """A form that cannot be a body; ``field`` names the field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def body_kind(content_type: str | None) -> str | None:
    """``"json"`` or ``"form"`` for a request's Content-Type, None for one the endpoint
    refuses (415). No Content-Type at all is JSON, as the endpoint always read it;
    ``application/json`` and any ``application/*+json`` are JSON (parameters such as
    ``charset`` ignored)."""
    if content_type is None or not content_type.strip():
        return JSON
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json" or (media.startswith("application/")
                                       and media.endswith("+json")):
        return JSON
    if media == "application/x-www-form-urlencoded":
        return FORM
    return None


def parse_form(raw: bytes) -> Any:
    """The body a form carries (see the module docstring); raises FormError for a form no
    body can come from, ValueError/RecursionError for JSON sent as a form that is not JSON."""
    text = raw.decode("utf-8", errors="replace")
    if text.lstrip().startswith("{"):
        return json.loads(text)
    body: dict[str, Any] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        _put(body, key, value)
    if "timestamp" in body:
        stamp = body["timestamp"]
        # A timestamp that is not digits stays text: the body check names it.
        if isinstance(stamp, str) and stamp.isascii() and stamp.isdigit():
            body["timestamp"] = int(stamp)
    return body


def _put(body: dict[str, Any], key: str, value: str) -> None:
    match = _KEY.match(key)
    if match is None:
        raise FormError(key[:64], f"bad form field name {key[:64]!r}")
    name, brackets = match.group(1), re.findall(r"\[([^\[\]]*)\]", match.group(2))
    if len(brackets) > MAX_BRACKETS:
        raise FormError(name, f"form field {name!r} nested deeper than {MAX_BRACKETS} levels")
    path = [name, *brackets]
    node: Any = body
    for step, part in enumerate(path):
        last = step == len(path) - 1
        if isinstance(node, list):
            if part != "" or not last:
                raise FormError(name, f"form field {name!r}: only a final [] appends")
            node.append(value)
            return
        if last:
            if part in node:
                raise FormError(name, f"form field {name!r} given twice")
            node[part] = value
            return
        child = node.setdefault(part, [] if path[step + 1] == "" else {})
        if not isinstance(child, (dict, list)) or (
                isinstance(child, list) != (path[step + 1] == "")):
            raise FormError(name, f"form field {name!r} given as text and as an object")
        node = child
