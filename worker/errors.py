"""The one error a worker reports to its master before it exits with WORKER_BOOT_ERROR."""


class BootError(Exception):
    """The worker cannot start; ``str(error)`` is a one-line message for the user."""
