"""sioctl: a python-socketio application on every core, with sticky sessions and Redis."""

__version__ = "0.1.0"
