#!/usr/bin/env bash
# The tests where redis-py's reply parser matters, again with hiredis as the parser (what
# `pip install 'sioctl[hiredis]'` gives, and any app that installs hiredis for itself: redis-py
# then uses it in every client of the process). The whole suite runs without it first (.venv
# has no hiredis: the path of a plain install); here hiredis, as redis-py's `hiredis` extra
# asks for it, goes into a folder of its own (.venv/hiredis) that only this run puts on
# PYTHONPATH, the clusters' workers included (they inherit the environment). scripts/test.sh
# runs it after the suite (SIOCTL_TEST_HIREDIS=0 skips it); it also runs alone, and extra
# arguments go to pytest. SIOCTL_TEST_WORKERS as in scripts/test.sh (0: serially).
set -euo pipefail
cd "$(dirname "$0")/.."
lib=.venv/hiredis
if ! PYTHONPATH=$lib .venv/bin/python -c 'import hiredis' 2>/dev/null; then
    # The version redis-py's own `hiredis` extra requires (redis-py 8: hiredis>=3.2.0).
    spec=$(.venv/bin/python -c 'import importlib.metadata as m, re
print(next(re.split(r"\s*;", r)[0] for r in m.requires("redis") or []
           if r.startswith("hiredis") and "extra" in r))')
    echo "setup: installing $spec into $lib (the hiredis run only)"
    .venv/bin/python -m pip install -q --no-deps --target "$lib" "$spec"
fi
export PYTHONPATH=$lib${PYTHONPATH:+:$PYTHONPATH}
.venv/bin/python -c 'import redis.utils; assert redis.utils.HIREDIS_AVAILABLE, "no hiredis"'
echo "tests with hiredis as redis-py's parser"
# The listener's reads (a reply cut across reads, a quiet subscription, a slow reader's
# backlog), the pooled clients across a Redis restart (the managers' owner records too), the
# in-process messaging units, and the workers' boot line (it names hiredis as the parser here,
# redis-py's own in the suite).
exec .venv/bin/python -m pytest -q -n "${SIOCTL_TEST_WORKERS:-3}" --dist loadfile \
    tests/unit/worker/messaging tests/e2e/test_messaging_listener.py \
    tests/e2e/test_redis_clients.py tests/e2e/test_gateway_redis_back.py \
    tests/e2e/test_messaging_bursts.py \
    tests/e2e/test_messaging.py::test_owner_records_come_back_after_a_redis_restart \
    tests/e2e/test_redis_urls.py::test_a_valkey_url_joins_the_workers "$@"
