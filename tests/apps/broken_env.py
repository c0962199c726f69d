"""An app module that fails at import the way real apps do: a setting read from the environment
in a helper the module calls, for the test that the user sees which line raised."""

import os


def database_url() -> str:
    return os.environ["SIOCTL_TEST_DATABASE_URL"]


DATABASE = database_url()
