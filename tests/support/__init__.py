"""Helpers the test suites share (the default run and tests/chaos), one module per idea:

- redis_fixtures: a private redis-server, a queue per test, a broker factory, `lease`
- broker_harness, engine_harness: the `brokers` (queue contract) and `engines` fixtures,
  each test body run on memory, SQLite and Redis; settling_clock: the fake clock they
  use, which keeps up with SQLite's writer thread
- broker_model: the queue contract's reference model and state machine
- dashboard: a seeded, fake-clocked dashboard and the ways to drive and read it
- terminal: a tmux terminal for end-to-end runs of the installed `ccdash`
- fleet: `ccdash worker` processes on a Redis queue; fleet_handlers: their handlers
  (`--handler support.fleet_handlers:NAME`, with tests/ on PYTHONPATH)
- http: a minimal GET for the metrics endpoint; polling: waiting on real time
"""
