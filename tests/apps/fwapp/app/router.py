def setup(app):
    chat = app.io.controller.chat
    util = app.io.controller.util
    app.io.route("ping", chat.ping)
    app.io.route("two_values", chat.two_values)
    app.io.route("boom", chat.boom)
    app.io.route("boom_in_middleware", chat.ping)
    app.io.route("blocked", chat.ping)
    app.io.route("whoami", chat.whoami)
    app.io.route("join", chat.join)
    app.io.route("remember", chat.remember)
    app.io.route("to_room", chat.to_room)
    app.io.route("shout", chat.shout)
    app.io.route("disconnecting", util.disconnecting)
    app.io.route("disconnect", util.disconnect)
    app.io.route("error", util.on_error)
    app.io.of("/chat").route("echo", util.echo)
    app.io.of("/chat").route("whoami", chat.whoami)
