#!/usr/bin/env bash
# Starts the demo chat cluster on http://127.0.0.1:7001 with 2 sticky workers and an embedded
# Redis; Ctrl-C stops it. Open the page, then chat from another worker with
# `.venv/bin/python scripts/demo-client.py --name bob` (it connects from another 127.x address).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/sioctl start --sticky -w "${WORKERS:-2}" -b "${BIND:-127.0.0.1:7001}" \
    examples/chat "$@"
