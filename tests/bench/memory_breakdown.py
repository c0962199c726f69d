"""Where the bytes of idle sessions go: two tracemalloc snapshots of one worker, compared.

    python tests/bench/memory_rounds.py --sessions 1000 --rounds 1 --tracemalloc 16 \\
        --env SIOCTL_TRACEMALLOC_SNAPSHOTS=/tmp/snaps
    python tests/bench/memory_breakdown.py /tmp/snaps/snapshot-PID-1 /tmp/snaps/snapshot-PID-2 \\
        --sessions 1000

The worker writes a whole snapshot at each memory dump when SIOCTL_TRACEMALLOC_SNAPSHOTS names
a folder (worker/memory.py); memory_rounds.py dumps at the start and while the sessions are
held. This prints the growth between two of them per session, in buckets: the saved C stack
of each kind of green thread (greenlet copies the used part of a switched-out greenlet's C
stack to the heap; tracemalloc sees it allocated at the switch, with the switching greenlet's
Python stack as traceback), then per allocating line. What tracemalloc does not see (CPython's
per-greenlet frame stacks, allocator overhead, pymalloc's free space) is the PSS per
connection minus the total shown.
"""

from __future__ import annotations

import argparse
import collections
import tracemalloc

# A frame in a traceback (most recent first) that names the green thread: the first match
# wins. The switch itself is eventlet's hub.switch (greenlet's stack save) or asyncio's.
THREADS = (
    ("engineio/socket.py", "writer", "python-engineio writer"),
    ("engineio/socket.py", "_websocket_handler", "websocket reader (wsgi handler)"),
    # (the reader's innermost frames, when the traceback is too short to reach the above)
    ("eventlet/websocket.py", "", "websocket reader (wsgi handler)"),
    ("eventlet/wsgi.py", "", "wsgi handler (HTTP)"),
)


def green_thread(trace: tracemalloc.Traceback) -> str:
    """Which green thread a stack save belongs to (by the frames of its traceback)."""
    # The reader started at the hub once the request hands the websocket over (eventlet):
    # its outermost frame says so (its innermost ones are eventlet's websocket's, as below).
    if any(frame.filename.endswith("worker/http_server.py")
           and _in_function(frame, "_read_websocket") for frame in trace):
        return "websocket reader (started at the hub)"
    for frame in reversed(trace):  # the innermost first
        for filename, function_line, name in THREADS:
            if frame.filename.endswith(filename) and _in_function(frame, function_line):
                return name
    return "other green thread"


_FUNCTIONS: dict[tuple[str, int], str] = {}


def _in_function(frame: tracemalloc.Frame, name: str) -> bool:
    """Whether ``frame`` is inside the function ``name`` (by reading the source: tracemalloc
    frames carry no function name). An empty name matches any frame of the file."""
    if not name:
        return True
    key = (frame.filename, frame.lineno)
    if key not in _FUNCTIONS:
        try:
            with open(frame.filename, encoding="utf-8") as source:
                lines = source.read().splitlines()[:frame.lineno]
        except OSError:
            lines = []
        found = ""
        # The innermost enclosing def: the first line above with less indentation that is a
        # def (a nested def before the line, at its own depth, is not an enclosing one).
        indent = _indent(lines[-1]) if lines else 0
        for line in reversed(lines[:-1]):
            stripped = line.lstrip()
            if not stripped or _indent(line) >= indent:
                continue
            if stripped.startswith("def "):
                found = stripped[4:].split("(")[0]
                break
            indent = _indent(line)
        _FUNCTIONS[key] = found
    return _FUNCTIONS[key] == name


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def is_stack_save(trace: tracemalloc.Traceback) -> bool:
    """An allocation made by greenlet while switching (its stack copy)."""
    top = trace[-1]
    return top.filename.endswith("eventlet/hubs/hub.py") or "greenlet" in top.filename


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--sessions", type=int, required=True)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    before = tracemalloc.Snapshot.load(args.before)
    after = tracemalloc.Snapshot.load(args.after)
    diffs = after.compare_to(before, "traceback")
    total = sum(d.size_diff for d in diffs)
    stacks: collections.Counter[str] = collections.Counter()
    stack_blocks: collections.Counter[str] = collections.Counter()
    lines: collections.Counter[str] = collections.Counter()
    counts: collections.Counter[str] = collections.Counter()
    for diff in diffs:
        trace = diff.traceback
        top = trace[-1]  # tracemalloc orders a traceback oldest frame first
        if "hub.py" in top.filename and "switch" in _line_text(top):
            name = green_thread(trace)
            stacks[name] += diff.size_diff
            stack_blocks[name] += diff.count_diff
        else:
            key = f"{_short(top.filename)}:{top.lineno}"
            _KEY_FRAMES[key] = top
            lines[key] += diff.size_diff
            counts[key] += diff.count_diff
    per = args.sessions
    print(f"traced growth: {total / per / 1024:.2f} KiB per session ({args.sessions} sessions)")
    print("saved C stacks, per session:")
    for name, size in stacks.most_common():
        print(f"  {size / per:8.0f} B  in {stack_blocks[name] / per:5.2f} blocks  {name}")
    print("allocating lines, per session:")
    for key, size in lines.most_common(args.top):
        print(f"  {size / per:8.0f} B  in {counts[key] / per:5.2f} blocks  {key}  "
              f"{_line_text_of(key)}")


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/wt/mem/", "/lib/python3.11/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


_SOURCES: dict[str, list[str]] = {}


def _line_text(frame: tracemalloc.Frame) -> str:
    if frame.filename not in _SOURCES:
        try:
            with open(frame.filename, encoding="utf-8") as source:
                _SOURCES[frame.filename] = source.read().splitlines()
        except OSError:
            _SOURCES[frame.filename] = []
    lines = _SOURCES[frame.filename]
    return lines[frame.lineno - 1].strip() if 0 < frame.lineno <= len(lines) else ""


_KEY_FRAMES: dict[str, tracemalloc.Frame] = {}


def _line_text_of(key: str) -> str:
    frame = _KEY_FRAMES.get(key)
    return _line_text(frame)[:60] if frame is not None else ""


if __name__ == "__main__":
    main()
