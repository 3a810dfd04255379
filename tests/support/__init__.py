"""Helpers the test suites share (the default run and tests/chaos): a private
redis-server, the three-broker harnesses (`brokers` for the queue contract, `engines`
for engine tests) with a fake clock SQLite keeps up with, and handlers run inside
worker processes (`--handler support.fleet_handlers:NAME`, with tests/ on PYTHONPATH)."""
