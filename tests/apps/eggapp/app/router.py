def setup(app):
    # app.io.route('chat', app.io.controller.chat.ping)
    app.io.route("chat", app.io.controller.chat.ping)
    app.io.route("whoami", app.io.controller.chat.whoami)
    app.io.of("/chat").route("chat", app.io.controller.chat.ping)
