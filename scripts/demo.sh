#!/usr/bin/env bash
# Starts the demo chat cluster on http://127.0.0.1:7001 with 2 sticky workers and an embedded
# Redis; Ctrl-C stops it. Open the page in two browsers, or run examples/chat_client.py.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/sioctl start --sticky -w "${WORKERS:-2}" -b "${BIND:-127.0.0.1:7001}" \
    examples/chat "$@"
