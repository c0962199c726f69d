#!/usr/bin/env bash
# The test command: sets up what is missing, then lint, type checks and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check sioctl cluster worker cli tests
.venv/bin/mypy sioctl cluster worker cli
exec .venv/bin/python -m pytest "$@"
