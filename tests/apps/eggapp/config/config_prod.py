# config/config.prod.js: only what differs in production.
io = {
    "init": {"pingTimeout": 20000},
}
