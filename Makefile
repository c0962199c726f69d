# Benchmarks (issue 8). CI never runs these; see tests/bench/README.md.
PYTHON ?= .venv/bin/python

.PHONY: bench bench-quick bench-setup

# The peers, each step skipped when already done: nginx, redis-server and the venv
# (scripts/setup.sh), matplotlib, uvloop and py-spy (the bench extra), and the Node.js
# Socket.IO cluster from npm (tests/bench/node/package-lock.json).
bench-setup:
	@[ -x $(PYTHON) ] && command -v redis-server >/dev/null && [ -x /usr/sbin/nginx ] \
		|| bash scripts/setup.sh
	@$(PYTHON) -c 'import matplotlib, uvloop' 2>/dev/null \
		|| $(PYTHON) -m pip install -q -e '.[test,bench]'
	@[ tests/bench/node/node_modules/.package-lock.json -nt tests/bench/node/package-lock.json ] \
		|| npm ci --prefix tests/bench/node --no-audit --no-fund --loglevel=error

# Every scenario against every system, 2 rounds: about 15 minutes on 2 cores.
bench: bench-setup
	$(PYTHON) tests/bench/suite.py

# The same in short phases with fewer clients and one round: about a minute.
bench-quick: bench-setup
	$(PYTHON) tests/bench/suite.py --quick
