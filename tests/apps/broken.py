"""An app module that fails at import time, for the boot-error tests."""

raise RuntimeError("broken app: this module always fails to import")
