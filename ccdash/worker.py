"""`ccdash worker`: one worker process of a fleet sharing a Redis broker.

    ccdash worker --broker redis://HOST:PORT/DB --handler pkg.module:func
                  [--concurrency N] [--name NAME]

Run one on every host; they compete for the same messages. Control commands
(drain, stop, kill a consumer, set concurrency) arrive through Redis, signed
with the secret in $CCDASH_CONTROL_SECRET or --control-secret-file. SIGTERM
(or Ctrl-C) stops gracefully: nothing is lost; a second one stops at once
(handlers in progress are cancelled, their messages handed back). Exit status:
0 stopped cleanly, 2 a usage or connection error (one line, credentials redacted).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ccdash.aio import first_error, run_bounded
from ccdash.brokers import is_redis_url, redact_url
from ccdash.brokers.base import BrokerError
from ccdash.brokers.urls import NAME
from ccdash.text import SafeFormatter, sanitize
from ccdash.validate import (
    Parser,
    UsageError,
    add_broker_flags,
    bounded,
    check_broker,
    check_distinct_files,
    check_output_path,
    guard,
    resolve_broker,
    secrets_kept_in_memory,
    shown,
)


def _worker_name(text: str) -> str:
    if not NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"expected 1 to 100 letters, digits or _ . : @ - (starting with a letter or "
            f"digit), got {shown(text)}"
        )
    return text


def build_parser() -> argparse.ArgumentParser:
    """The `ccdash worker` arguments."""
    p = Parser(prog="ccdash worker", description=__doc__.splitlines()[0])
    add_broker_flags(
        p,
        "redis://[user:pass@]host:port/db or rediss://... (add ?queue=NAME "
        "to use a queue other than 'default')",
        required=True,
    )
    p.add_argument(
        "--handler",
        required=True,
        metavar="MODULE:FUNC",
        help="the async function that handles one delivery",
    )
    p.add_argument(
        "--concurrency",
        type=bounded(int, 1, 1000),
        default=4,
        metavar="N",
        help="consumers in this process (1 to 1000, default 4)",
    )
    p.add_argument(
        "--name",
        type=_worker_name,
        metavar="NAME",
        help="this worker's name (default host-pid-rand)",
    )
    p.add_argument(
        "--prefetch",
        type=bounded(int, 1, 10_000),
        default=1,
        metavar="N",
        help="deliveries one consumer may hold (1 to 10000, default 1)",
    )
    p.add_argument(
        "--visibility-timeout",
        type=bounded(float, 0, 86_400, " seconds", above=True),
        default=30.0,
        metavar="S",
        help="lease length in seconds (default 30)",
    )
    p.add_argument(
        "--heartbeat-ttl",
        type=bounded(float, 0.3, 3600, " seconds"),
        default=3.0,
        metavar="S",
        help="seconds after which a silent worker's messages go to the others (default 3)",
    )
    p.add_argument(
        "--max-attempts",
        type=bounded(int, 1, 1000),
        default=5,
        metavar="N",
        help="deliveries before the DLQ (1 to 1000, default 5)",
    )
    p.add_argument(
        "--grace",
        type=bounded(float, 0, 3600, " seconds"),
        default=5.0,
        metavar="S",
        help="seconds handlers get to finish when stopping (default 5)",
    )
    p.add_argument(
        "--control-secret-file",
        metavar="PATH",
        help="file holding the control secret (else $CCDASH_CONTROL_SECRET)",
    )
    p.add_argument(
        "--audit-log",
        metavar="PATH",
        help="also append accepted control commands to this file (JSON lines)",
    )
    p.add_argument(
        "--record",
        metavar="FILE",
        help="record this worker's run to FILE (owner-only) for `ccdash replay FILE`",
    )
    p.add_argument(
        "--record-bodies",
        action="store_true",
        help="with --record: keep dead letters' message bodies too",
    )
    return p


def main(argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """Run a worker; returns the exit status."""
    try:
        with secrets_kept_in_memory():  # no process a handler starts inherits them
            return _main(list(sys.argv[1:] if argv is None else argv), parser)
    except UsageError as exc:
        text = " ".join(sanitize(exc, 2000, keep="\n\t").split())
        print(f"ccdash: error: {text}", file=sys.stderr)  # the one prefix of the contract
        return 2


def _check(
    argv: list[str], parser: argparse.ArgumentParser | None
) -> tuple[argparse.Namespace, str, Any, bytes | None]:
    """Every value checked before the worker starts: arguments, URL, handler, secret."""
    from ccdash.fleet.control import SECRET_FILE_ENV, ControlError, load_secret
    from ccdash.handler_spec import load_handler

    args = (parser or build_parser()).parse_args(argv)
    url, source = resolve_broker(args.broker, args.broker_file, default=None)
    if url is None:
        raise UsageError(
            "--broker: a worker needs a redis:// or rediss:// URL: give "
            "--broker, --broker-file or $CCDASH_BROKER"
        )
    if not is_redis_url(url):
        raise UsageError(
            f"{source}: a worker needs a redis:// or rediss:// URL, got {shown(redact_url(url))}"
        )
    check_broker(url, source)
    for flag, path in (("--audit-log", args.audit_log), ("--record", args.record)):
        if path is not None:
            check_output_path(flag, path)
    check_distinct_files(
        [
            ("--control-secret-file", args.control_secret_file),
            (
                f"${SECRET_FILE_ENV}",
                None if args.control_secret_file else os.getenv(SECRET_FILE_ENV),
            ),
            ("--broker-file", args.broker_file),
            ("--audit-log", args.audit_log),
            ("--record", args.record),
        ]
    )
    if args.record_bodies and not args.record:
        raise UsageError("--record-bodies applies to --record FILE; add it")
    handler = load_handler(args.handler)
    try:
        secret = load_secret(args.control_secret_file)
    except ControlError as exc:
        raise UsageError(str(exc)) from None
    if args.heartbeat_ttl >= args.visibility_timeout:
        raise UsageError(
            f"--heartbeat-ttl {args.heartbeat_ttl:g} must be below "
            f"--visibility-timeout ({args.visibility_timeout:g})"
        )
    return args, url, handler, secret


def _main(argv: list[str], parser: argparse.ArgumentParser | None) -> int:
    from ccdash.fleet.connect import FleetConnectError
    from ccdash.fleet.runtime import WorkerOptions, WorkerRuntime

    with guard():
        args, url, handler, secret = _check(argv, parser)
    recorder = None
    if args.record:
        from ccdash.record.writer import Recorder

        recorder = Recorder.create(args.record, bodies=args.record_bodies)
    out = logging.StreamHandler(sys.stderr)
    out.setFormatter(SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[out])
    opts = WorkerOptions(
        broker_url=url,
        handler=handler,
        concurrency=args.concurrency,
        name=args.name,
        prefetch=args.prefetch,
        visibility_timeout=args.visibility_timeout,
        heartbeat_ttl=args.heartbeat_ttl,
        max_attempts=args.max_attempts,
        grace=args.grace,
        secret=secret,
        audit_file=Path(args.audit_log) if args.audit_log else None,
        recorder=recorder,
    )
    try:
        return run_bounded(WorkerRuntime(opts).run())
    except ValueError as exc:  # bad URL options (redacted by the broker)
        raise UsageError(str(exc)) from None
    except (BrokerError, FleetConnectError) as exc:
        raise UsageError(str(exc)) from None
    except BaseExceptionGroup as group:  # the engine's tasks: its broker failed mid-run
        failed = first_error(group)
        if not isinstance(failed, BrokerError):
            raise
        text = sanitize(f"the worker stopped: {failed}", 2000)
        print(f"ccdash: error: {text}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
