def setup(app):
    chat = app.io.controller.chat
    app.io.route("echo", chat.echo)
    app.io.route("whoami", chat.whoami)
    app.io.route("shout", app.io.controller.plain.shout)
