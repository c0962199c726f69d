#!/usr/bin/env bash
# Installs what sioctl's demo and tests need on a fresh Debian/Ubuntu machine: redis-server and
# nginx (apt), a virtualenv in .venv with sioctl and its test tools, and the JS client (npm).
# Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)  # test certificates
# deploy/'s files are checked with the real tools (tests/e2e/test_deploy_files.py).
command -v logrotate >/dev/null 2>&1 || [ -x /usr/sbin/logrotate ] || need_apt+=(logrotate)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
# Headless Chromium for the demo page's test (tests/e2e/test_demo.py; about 10 s, 110 MB).
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
# nginx's stream module (TCP proxying with the PROXY protocol) is a package of its own.
[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || need_apt+=(libnginx-mod-stream)
if [ ${#need_apt[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup: installing ${need_apt[*]} with apt-get"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${need_apt[@]}" >/dev/null
    # Debian starts the packaged services; the project starts its own on free ports.
    for svc in redis-server nginx; do
        $sudo service "$svc" stop >/dev/null 2>&1 || true
    done
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
echo "setup: installing sioctl (editable) and test tools into .venv"
.venv/bin/python -m pip install -q -e '.[test]'

if command -v npm >/dev/null 2>&1; then
    echo "setup: installing the JavaScript socket.io-client (tests/js)"
    npm ci --prefix tests/js --no-audit --no-fund --loglevel=error >/dev/null
else
    echo "setup: npm not found; the JavaScript client tests will be skipped" >&2
fi
