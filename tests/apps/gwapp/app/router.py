def setup(app):
    """The gateway needs no routes (requestMessage is built in); whoami locates a client."""
    app.io.route("whoami", app.io.controller.info.whoami)
