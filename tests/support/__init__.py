"""Helpers the tests share, imported as ``tests.support.<module>`` (never from a conftest.py or
from another test module):

- ``clients``: Socket.IO clients from a chosen 127.0.0.x address, process and wait helpers;
- ``cluster``: a real ``sioctl start --sticky`` cluster (``Cluster``, ``module_cluster``) and
  ``run_sioctl``; the test apps of each engine (``ENGINES``, ``CHAT_APPS``,
  ``MESSAGING_APPS``, ``app_on`` for an eventlet test app's asyncio twin);
- ``ports``: free ports that no other xdist worker hands out;
- ``paths``: the repository's folders;
- ``conformance``: raw Engine.IO / Socket.IO clients;
- ``gateway``: the gateway app, ``GwClient``, signed requests;
- ``messaging``: the messaging app, a redis-server of a test's own, counted messages;
- ``metrics``, ``nginx``, ``node``: the metrics page, nginx in front, the JavaScript client;
- ``asgi_polling``, ``asgi_client``: in-process clients of ASGI apps (the framework's and the
  async protocol shells'), no socket or server process;
- ``contract_checks`` / ``contract_layouts`` / ``contract_scan``: the library contract checks
  (tests/contract/test_library_contract.py).

The fixtures built on them are in tests/conftest.py (clusters, redis, clients) and
tests/e2e/conftest.py (``own_redis``, ``client``, ``start_nginx``, ``start_nodes``).
"""
