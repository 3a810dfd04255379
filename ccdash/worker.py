"""`ccdash worker`: one worker process of a fleet sharing a Redis broker.

    ccdash worker --broker redis://HOST:PORT/DB --handler pkg.module:func
                  [--concurrency N] [--name NAME]

Run one on every host; they compete for the same messages. Control commands
(drain, stop, kill a consumer, set concurrency) arrive through Redis, signed
with the secret in $CCDASH_CONTROL_SECRET or --control-secret-file. SIGTERM
stops gracefully: nothing is lost. Exit status: 0 stopped cleanly, 2 a usage
or connection error (one line, credentials redacted).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ccdash.brokers import is_redis_url, redact_url
from ccdash.brokers.base import BrokerError


class WorkerUsageError(Exception):
    """A bad command line or setting; printed as one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise WorkerUsageError(message)


def _positive(kind: Callable[[str], float]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0, got {text!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The `ccdash worker` arguments."""
    p = _Parser(prog="ccdash worker", description=__doc__.splitlines()[0])
    p.add_argument("--broker", required=True, metavar="URL",
                   help="redis://[user:pass@]host:port/db or rediss://... (add ?queue=NAME "
                        "to use a queue other than 'default')")
    p.add_argument("--handler", required=True, metavar="MODULE:FUNC",
                   help="the async function that handles one delivery")
    p.add_argument("--concurrency", type=_positive(int), default=4, metavar="N",
                   help="consumers in this process (default 4)")
    p.add_argument("--name", metavar="NAME", help="this worker's name (default host-pid-rand)")
    p.add_argument("--prefetch", type=_positive(int), default=1, metavar="N",
                   help="deliveries one consumer may hold (default 1)")
    p.add_argument("--visibility-timeout", type=_positive(float), default=30.0, metavar="S",
                   help="lease length in seconds (default 30)")
    p.add_argument("--heartbeat-ttl", type=_positive(float), default=3.0, metavar="S",
                   help="seconds after which a silent worker's messages go to the others "
                        "(default 3)")
    p.add_argument("--max-attempts", type=_positive(int), default=5, metavar="N",
                   help="deliveries before the DLQ (default 5)")
    p.add_argument("--grace", type=float, default=5.0, metavar="S",
                   help="seconds handlers get to finish when stopping (default 5)")
    p.add_argument("--control-secret-file", metavar="PATH",
                   help="file holding the control secret (else $CCDASH_CONTROL_SECRET)")
    p.add_argument("--audit-log", metavar="PATH",
                   help="also append accepted control commands to this file (JSON lines)")
    p.add_argument("--record", metavar="FILE",
                   help="record this worker's run to FILE (owner-only) for `ccdash replay FILE`")
    p.add_argument("--record-bodies", action="store_true",
                   help="with --record: keep dead letters' message bodies too")
    return p


def main(argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None
         ) -> int:
    """Run a worker; returns the exit status."""
    try:
        return _main(list(sys.argv[1:] if argv is None else argv), parser)
    except WorkerUsageError as exc:
        print(f"ccdash worker: error: {exc}", file=sys.stderr)
        return 2


def _main(argv: list[str], parser: argparse.ArgumentParser | None) -> int:
    from ccdash.fleet.connect import FleetConnectError
    from ccdash.fleet.control import ControlError, load_secret
    from ccdash.fleet.runtime import WorkerOptions, WorkerRuntime

    args = (parser or build_parser()).parse_args(argv)
    url = args.broker
    if not is_redis_url(url):
        raise WorkerUsageError(f"--broker: a worker needs a redis:// or rediss:// URL, "
                               f"got {redact_url(url)!r}")
    try:
        from ccdash.cli import UsageError, load_handler
    except ImportError:  # pragma: no cover - the CLI ships with the package
        raise
    try:
        handler = load_handler(args.handler)
    except UsageError as exc:
        raise WorkerUsageError(str(exc)) from None
    try:
        secret = load_secret(args.control_secret_file)
    except ControlError as exc:
        raise WorkerUsageError(str(exc)) from None
    if args.heartbeat_ttl >= args.visibility_timeout:
        raise WorkerUsageError("--heartbeat-ttl must be below --visibility-timeout")
    if args.record_bodies and not args.record:
        raise WorkerUsageError("--record-bodies applies to --record FILE; add it")
    recorder = None
    if args.record:
        from ccdash.record.writer import Recorder

        try:
            recorder = Recorder.create(args.record, bodies=args.record_bodies)
        except OSError as exc:
            raise WorkerUsageError(f"--record: cannot write to {args.record}: "
                                   f"{exc.strerror or exc}") from None
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    opts = WorkerOptions(
        broker_url=url, handler=handler, concurrency=args.concurrency, name=args.name,
        prefetch=args.prefetch, visibility_timeout=args.visibility_timeout,
        heartbeat_ttl=args.heartbeat_ttl, max_attempts=args.max_attempts, grace=args.grace,
        secret=secret, audit_file=Path(args.audit_log) if args.audit_log else None,
        recorder=recorder)
    try:
        return asyncio.run(WorkerRuntime(opts).run())
    except ValueError as exc:  # bad URL options (redacted by the broker)
        raise WorkerUsageError(str(exc)) from None
    except (BrokerError, FleetConnectError) as exc:
        raise WorkerUsageError(str(exc)) from None


if __name__ == "__main__":
    raise SystemExit(main())
