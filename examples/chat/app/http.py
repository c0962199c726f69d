"""The demo's pages: the chat page, the socket.io client and /whoami (which worker answers,
for the page and scripts/demo-client.py); everything else 404."""

import os

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FILES = {
    "/": (os.path.join(ROOT, "public", "index.html"), "text/html; charset=utf-8"),
    "/socket.io.min.js": (
        os.path.join(ROOT, "..", "..", "tests", "js", "node_modules", "socket.io-client",
                     "dist", "socket.io.min.js"),
        "application/javascript",
    ),
}


def whoami():
    return f"slot {os.environ.get('SIOCTL_WORKER_SLOT', '?')} (pid {os.getpid()})"


def http(app):
    def application(environ, start_response):
        if environ.get("PATH_INFO") == "/whoami":
            body = (whoami() + "\n").encode()
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"),
                                      ("Content-Length", str(len(body)))])
            return [body]
        found = FILES.get(environ.get("PATH_INFO", "/"))
        if found is None or not os.path.isfile(found[0]):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        with open(found[0], "rb") as f:
            body = f.read()
        start_response("200 OK", [("Content-Type", found[1]),
                                  ("Content-Length", str(len(body)))])
        return [body]

    return application
