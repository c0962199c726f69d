"""What a HUP may change in a running cluster: the settings read again, laid over the running ones.

The workers are restarted by the HUP, so every setting they read takes effect with their
replacements. What the master itself holds since its start (the listening sockets, the run
directory and control socket, the metrics endpoint, its log file, the Redis the workers share)
cannot change under running workers: such a change is reported and the running value kept, until
a restart.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .settings import AUTO, Settings

# Settings the master set up at start and keeps until it stops.
NEED_RESTART = (
    "binds", "title", "run_dir", "metrics_bind", "pidfile", "daemon", "errorlog", "backlog",
    "pending_limit", "proxy_protocol", "forwarded_allow_ips", "redis_url",
)
# Settings that are not applied as such: the worker count goes through Supervisor.scale, the
# process name is the title's.
NOT_COPIED = ("workers", "proc_name")


@dataclass
class Changes:
    """What :func:`compare` found: values to set now, and settings that need a restart."""

    apply: dict[str, Any] = field(default_factory=dict)
    need_restart: list[str] = field(default_factory=list)


def compare(running: Settings, fresh: Settings) -> Changes:
    """How ``fresh`` (the config read again) differs from the ``running`` settings.

    ``fresh.worker_class`` is ``auto`` unless the config names an engine; the running engine
    (resolved at start) is kept then.
    """
    changes = Changes()
    for spec in dataclasses.fields(Settings):
        name = spec.name
        old, new = getattr(running, name), getattr(fresh, name)
        if name == "worker_class" and new == AUTO:
            continue
        if old == new or name in NOT_COPIED:
            continue
        if name in NEED_RESTART:
            changes.need_restart.append(name)
        else:
            changes.apply[name] = new
    return changes
