#!/usr/bin/env bash
# The library contract and protocol conformance tests on the lowest python-socketio,
# python-engineio and eventlet that pyproject.toml allows, in their own virtualenv
# (.venv-lowest; reinstalled whenever those lower bounds change). scripts/test.sh runs it after
# the whole suite, which runs on the newest allowed versions (.venv). Extra arguments go to pytest;
# SIOCTL_TEST_WORKERS as in scripts/test.sh (0: serially).
set -euo pipefail
cd "$(dirname "$0")/.."
pins=$(python3 scripts/lowest_pins.py)
# (Also when a test tool is missing, such as pytest-xdist in a .venv-lowest made before it.)
if [ ! -x .venv-lowest/bin/python ] || [ "$(cat .venv-lowest/pins 2>/dev/null)" != "$pins" ] \
        || ! .venv-lowest/bin/python -c 'import xdist' 2>/dev/null; then
    echo "setup: installing sioctl and the lowest allowed libraries into .venv-lowest"
    [ -x .venv-lowest/bin/python ] || "${PYTHON:-python3}" -m venv .venv-lowest
    .venv-lowest/bin/python -m pip install -q --upgrade pip >/dev/null
    echo "$pins" > .venv-lowest/constraints.txt
    .venv-lowest/bin/python -m pip install -q -e '.[test]' -c .venv-lowest/constraints.txt
    echo "$pins" > .venv-lowest/pins
fi
echo "tests on the lowest allowed libraries:" $pins
exec .venv-lowest/bin/python -m pytest -q -n "${SIOCTL_TEST_WORKERS:-3}" --dist loadfile \
    tests/contract "$@"
