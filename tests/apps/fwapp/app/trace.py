"""Appends one line per step to the file named by FWAPP_TRACE."""

import os


def trace(line):
    path = os.environ.get("FWAPP_TRACE")
    if path:
        with open(path, "a") as f:
            f.write(f"{line}\n")
