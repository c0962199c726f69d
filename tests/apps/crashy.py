"""The chat app, except that it dies at import time while a marker file exists.

The marker's path comes from CRASHY_MARKER. The crash-loop test creates the file to make every
respawned worker exit before it is ready, and removes it to let the slot recover.
"""

from __future__ import annotations

import os

_marker = os.environ.get("CRASHY_MARKER")
if _marker and os.path.exists(_marker):
    # Like a module that fails hard at import: no traceback, no boot_error message.
    os._exit(1)

from tests.apps.chat import sio  # noqa: E402

__all__ = ["sio"]
