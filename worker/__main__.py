"""``python -m sioctl.worker``: one eventlet worker process (see :mod:`sioctl.worker.main`)."""

import warnings

# Both must happen before anything imports eventlet (or socket, threading, redis...):
# eventlet prints a deprecation banner on import, and RedisManager refuses to run unless the
# socket module is monkey-patched.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()

import sys  # noqa: E402

from sioctl.worker.main import main  # noqa: E402

sys.exit(main())
