#!/usr/bin/env bash
# The test command: sets up what is missing, then lint, type checks and the whole test suite on
# the newest library versions pyproject.toml allows (.venv, redis-py's own parser), the tests
# where redis-py's reply parser matters again with hiredis (scripts/test-hiredis.sh;
# SIOCTL_TEST_HIREDIS=0 skips it), then the library contract and protocol conformance tests on
# the lowest ones (scripts/test-lowest.sh; SIOCTL_TEST_LOWEST=0 skips that part). The suite
# runs in parallel on SIOCTL_TEST_WORKERS pytest-xdist workers (default 3; 0 runs it serially),
# each module whole on one worker (--dist loadfile) so that a module-scoped cluster starts once.
# On 2 cores, 3 finished first (2 and 6 were slower: the clusters the tests start need the CPU
# too); docs/design.md, "Tests", has the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check sioctl cluster worker cli tests
.venv/bin/mypy sioctl cluster worker cli
.venv/bin/python -m pytest -n "${SIOCTL_TEST_WORKERS:-3}" --dist loadfile "$@"
if [ "${SIOCTL_TEST_HIREDIS:-1}" != "0" ]; then
    bash scripts/test-hiredis.sh
fi
if [ "${SIOCTL_TEST_LOWEST:-1}" != "0" ]; then
    exec bash scripts/test-lowest.sh
fi
