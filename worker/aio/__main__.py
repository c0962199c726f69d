"""``python -m sioctl.worker.aio``: one asyncio worker process (see :mod:`.main`)."""

import sys

from sioctl.worker.aio.main import main

sys.exit(main())
