"""The repository's folders, for tests that read files or start processes from its root."""

from __future__ import annotations

from pathlib import Path

SUPPORT_DIR = Path(__file__).resolve().parent
TESTS_DIR = SUPPORT_DIR.parent
REPO_ROOT = TESTS_DIR.parent
# The apps the clusters serve (spec strings say ``tests.apps.<module>:<object>``).
APPS_DIR = TESTS_DIR / "apps"
# The Node.js clients (tests/js/client.js, client_v2.js) and their node_modules.
JS_DIR = TESTS_DIR / "js"
