"""The durable single-file broker on SQLite (WAL): survives a crash of the process.

`broker` is the front (`SqliteBroker`); one writer thread commits batches (`writer`),
the `link` carries operations and results between the loop and that thread, and the
views read on the loop without waiting for the writer.
"""

from ccdash.brokers.sqlite.broker import SqliteBroker

__all__ = ["SqliteBroker"]
