# An app directory written exactly the egg-socket.io way (config/config.default.js, in Python):
# egg's camelCase names, engine.io's options in milliseconds, socketConfig, an engine.io option
# sioctl has no use for (wsEngine). It must run unchanged: tests/e2e/test_egg_migration.py.
import uuid

keys = "eggapp_1700000000000_1234"

# {app_root}/config/config.default.js: key 由管理员统一分配
socketConfig = {
    "signatureApp": {"key": "egg-signature-key"},
}

io = {
    "init": {
        "pingInterval": 25000,
        "pingTimeout": 20000,
        "maxHttpBufferSize": 1e6,
        "transports": ["polling", "websocket"],
        "cors": {"origin": "*", "credentials": True},
        "allowEIO3": True,
        "wsEngine": "ws",
    },
    "namespace": {
        "/": {
            "connectionMiddleware": ["auth"],
            "packetMiddleware": ["filter"],
        },
        "/chat": {
            "connectionMiddleware": [],
            "packetMiddleware": [],
        },
    },
    # Something like a UUID, as egg's README says (the request is the handshake's environ here).
    "generateId": lambda request: "egg-" + uuid.uuid4().hex,
}
