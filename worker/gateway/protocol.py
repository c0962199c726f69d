"""The gateway's wire format under its former name: ``sioctl.worker.gateway.wire``.

Python clients imported the wire format from here before it was renamed (``protocol`` now
means only the Engine.IO/Socket.IO rules in ``sioctl.worker.protocol``); this keeps their
imports working. New code imports ``sioctl.worker.gateway.wire``, or ``sioctl.gateway_wire``.
"""

from .wire import *  # noqa: F403
