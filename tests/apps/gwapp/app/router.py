def setup(app):
    """The gateway needs no routes: requestMessage is built in."""
