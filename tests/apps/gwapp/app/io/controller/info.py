import os


def whoami(ctx):
    """Which worker serves this socket (the nginx tests locate clients with it)."""
    return {
        "slot": int(os.environ.get("SIOCTL_WORKER_SLOT", "-1")),
        "pid": os.getpid(),
        "sid": ctx.socket.id,
        "remote_addr": ctx.request.get("REMOTE_ADDR"),
    }
