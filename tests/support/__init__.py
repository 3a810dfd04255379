"""Helpers the test suites share (the default run and tests/chaos): a private
redis-server, the three-broker harness, and handlers run inside worker processes
(`--handler support.fleet_handlers:NAME`, with tests/ on PYTHONPATH)."""
