# The demo chat's configuration. config_local.py (sioctl dev) and config_prod.py (sioctl start)
# are laid over it.
import os

# Secrets that sign session cookies; the first signs, all verify (rotate by prepending).
keys = os.environ.get("CHAT_KEYS", "demo-only-change-me")

io = {
    "init": {"ping_interval": 10, "ping_timeout": 5},
    "namespace": {
        "/": {
            "connection_middleware": ["nickname"],
            "packet_middleware": ["rate_limit"],
        },
    },
}
