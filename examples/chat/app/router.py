def setup(app):
    chat = app.io.controller.chat
    app.io.route("say", chat.say)
    app.io.route("disconnect", chat.leave)
