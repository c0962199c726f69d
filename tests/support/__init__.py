"""Helpers the tests share, imported as ``tests.support.<module>`` (never from a conftest.py):

- ``clients``: Socket.IO clients from a chosen 127.0.0.x address, process and wait helpers;
- ``cluster``: a real ``sioctl start --sticky`` cluster (``Cluster``, ``module_cluster``) and
  ``run_sioctl``;
- ``ports``: free ports that no other xdist worker hands out;
- ``paths``: the repository's folders;
- ``messaging``: the messaging tests' app, their own redis-server, tags;
- ``contract_checks`` / ``contract_layouts`` / ``contract_scan``: the library contract checks
  (tests/contract/test_library_contract.py).
"""
