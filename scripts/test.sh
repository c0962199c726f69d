#!/usr/bin/env bash
# The test command: sets up what is missing, then lint, type checks and the whole test suite on
# the newest library versions pyproject.toml allows (.venv), then the library contract and
# protocol conformance tests on the lowest ones (scripts/test-lowest.sh; SIOCTL_TEST_LOWEST=0
# skips that part).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check sioctl cluster worker cli tests
.venv/bin/mypy sioctl cluster worker cli
.venv/bin/python -m pytest "$@"
if [ "${SIOCTL_TEST_LOWEST:-1}" != "0" ]; then
    exec bash scripts/test-lowest.sh
fi
