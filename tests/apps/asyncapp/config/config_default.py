# An egg-socket.io style app written for the asyncio engine: async def middleware that awaits
# next(), and async controllers, as in egg-socket.io's examples. On eventlet it is refused when
# it loads (tests/e2e/test_framework.py), naming the file and the function.
keys = ["test-key-new", "test-key-old"]

io = {
    "init": {"ping_interval": 5, "ping_timeout": 5},
    "namespace": {
        "/": {"connection_middleware": ["auth"], "packet_middleware": ["timing"]},
    },
}
