# The framework test app: every middleware writes what it does to the file named by FWAPP_TRACE,
# so that tests can see the order of the before and after halves, even at disconnect.
keys = ["test-key-new", "test-key-old"]

io = {
    "init": {"ping_interval": 5, "ping_timeout": 5, "cors": True},
    "namespace": {
        "/": {
            "connection_middleware": ["trace_conn", "auth"],
            "packet_middleware": ["trace_packet", "guard"],
        },
        "/chat": {"connection_middleware": ["trace_conn"], "packet_middleware": []},
    },
}

custom = {"greeting": "hello"}
