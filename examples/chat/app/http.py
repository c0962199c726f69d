"""The demo's pages: the chat page and the socket.io client, everything else 404."""

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


def http(app):
    def application(environ, start_response):
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
