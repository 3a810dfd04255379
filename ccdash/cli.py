"""The `ccdash` command: parse arguments, pick a mode, report usage errors clearly.

Exit status: 0 the run passed; 1 something was lost or an SLO failed; 2 a usage
error (one line `ccdash: error: ...`, never a traceback); 130/143/129 stopped by
SIGINT/SIGTERM/SIGHUP with nothing lost; 141 the output pipe was closed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ccdash import __version__
from ccdash.brokers.base import BrokerBusy, BrokerError
from ccdash.handler_spec import load_handler as load_handler  # re-exported: the worker uses it
from ccdash.ops import OpsError
from ccdash.scenario import ScenarioError, builtin_names, load_scenario
from ccdash.text import SafeFormatter, escape_unencodable, sanitize
from ccdash.validate import (
    Parser,
    add_broker_flags,
    bounded,
    check_broker,
    check_distinct_files,
    check_output_path,
    check_theme,
    guard,
    resolve_broker,
    secrets_kept_in_memory,
)
from ccdash.validate import UsageError as UsageError  # re-exported: other commands use it

SUBCOMMANDS = ("bench", "replay", "worker")

EPILOG = """\
other commands:
  ccdash bench [--broker URL] [--json PATH]   throughput beside an asyncio.Queue floor
  ccdash worker --broker redis://... --handler pkg.module:func
                                              a worker process of a fleet
  ccdash replay FILE [--report] [--plot F.svg]
                                              a recording (--record) in the dashboard

exit status: 0 passed, 1 something lost or an SLO failed, 2 usage error,
130/143/129 stopped by SIGINT/SIGTERM/SIGHUP.
built-in scenarios (also in demo/): """


MAX_DURATION = 86_400.0  # seconds; the same bound as a scenario's duration
_seconds = bounded(float, 0, MAX_DURATION, " seconds", above=True)
_seed = bounded(int, 0, 2**63 - 1)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            f"expected a port from 1 to 65535 (or 0 for any free port), got {value}"
        )
    return value


def build_parser() -> Parser:
    """The top-level `ccdash` arguments."""
    p = Parser(
        prog="ccdash",
        allow_abbrev=False,
        description="Competing-consumer dashboard: the TUI by default, or a headless demo run.",
        epilog=EPILOG + ", ".join(builtin_names()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--demo",
        action="store_true",
        help="run headless: no dashboard; print progress and a report",
    )
    p.add_argument(
        "--scenario",
        metavar="FILE",
        help="scenario TOML file, or a built-in name (default: the default demo)",
    )
    p.add_argument(
        "--duration",
        type=_seconds,
        metavar="S",
        help="run for S seconds (--demo); the scenario's timeline is scaled to fit",
    )
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON (--demo)")
    p.add_argument(
        "--seed",
        type=_seed,
        metavar="N",
        help="seed for load and faults: same seed, same messages and drills",
    )
    p.add_argument(
        "--handler",
        metavar="MODULE:FUNC",
        help="your own async handler instead of the simulated one",
    )
    p.add_argument("--theme", metavar="NAME", help="a theme from themes/ (dashboard)")
    p.add_argument(
        "--read-only",
        action="store_true",
        default=None,
        help="the dashboard refuses every key that would change something",
    )
    add_broker_flags(
        p,
        "memory (default), sqlite:///FILE.db (durable: what is still "
        "queued at the end stays in the file), or redis://[user:pass@]host:port/db "
        "(rediss:// for TLS): join that fleet as one more worker and show it",
    )
    p.add_argument(
        "--metrics-port",
        type=_port,
        metavar="N",
        help="serve Prometheus metrics at http://127.0.0.1:N/metrics during the run "
        "(0: any free port, printed)",
    )
    p.add_argument(
        "--log-file",
        metavar="PATH",
        help="append one JSON line per operational event (consumer failed, "
        "scaling, drill step, alert, ...)",
    )
    p.add_argument(
        "--record",
        metavar="FILE",
        help="record the run to FILE (owner-only) for `ccdash replay FILE`",
    )
    p.add_argument(
        "--record-bodies",
        action="store_true",
        help="with --record: keep dead letters' message bodies too (left out by default)",
    )
    p.add_argument(
        "--plot",
        metavar="FILE",
        help="draw the run's timeline, drills marked, to FILE.svg/.png/.pdf "
        "(--demo; needs matplotlib)",
    )
    p.add_argument("--version", action="version", version=f"ccdash {__version__}")
    return p


OUTPUT_FLAGS = ("--json", "--log-file", "--record", "--plot")


def check_distinct_outputs(args: argparse.Namespace) -> None:
    """Two outputs naming one file would overwrite each other (the recording by the
    report, say), an output naming the scenario or the broker file would overwrite
    it: refused before the run."""
    inputs = [("--scenario", args.scenario), ("--broker-file", args.broker_file)]
    check_distinct_files(
        [
            *((flag, path) for flag, path in inputs if path and os.path.isfile(path)),
            *((flag, getattr(args, flag[2:].replace("-", "_"))) for flag in OUTPUT_FLAGS),
        ]
    )


def check_evidence(args: argparse.Namespace) -> None:
    """--record, --record-bodies and --plot: where they apply, and files that can be written."""
    if args.record_bodies and not args.record:
        raise UsageError("--record-bodies applies to --record FILE; add it")
    if args.plot is not None and not args.demo:
        raise UsageError(
            "--plot applies to headless runs; add --demo (or plot a recording: "
            "ccdash replay FILE --plot F.svg)"
        )
    if args.record is not None:
        check_output_path("--record", args.record)
    if args.plot is not None:
        from ccdash.record.plot import PlotError, check_plot_path

        check_output_path("--plot", args.plot)
        try:
            check_plot_path(args.plot)
        except PlotError as exc:
            raise UsageError(str(exc)) from None


def _subcommand(name: str, argv: list[str]) -> int:
    module = importlib.import_module(f"ccdash.{name}")
    parser = Parser(prog=f"ccdash {name}")
    if hasattr(module, "build_parser"):  # reuse its arguments, with our one-line errors
        built = module.build_parser()
        parser = Parser(
            prog=built.prog,
            description=built.description,
            allow_abbrev=False,
            parents=[built],
            add_help=False,
        )
        return int(module.main(argv, parser=parser))
    return int(module.main(argv))


def run(argv: Sequence[str]) -> int:
    """Check everything, then dispatch; raises UsageError or ScenarioError for usage
    problems (before anything runs)."""
    argv = list(argv)
    if argv and argv[0] in SUBCOMMANDS:
        return _subcommand(argv[0], argv[1:])
    with guard(passthrough=(ScenarioError,)):
        args, scenario, handler, broker = check_args(argv)
    try:
        return _run_mode(args, scenario, handler, broker)
    except BrokerBusy as exc:  # held by another process past the patience: not a usage error
        print(f"ccdash: error: {sanitize(str(exc), 2000)}", file=sys.stderr)
        return 1
    except BrokerError as exc:  # the broker could not be opened (file, directory, ...)
        raise UsageError(f"{args.broker_source}: {exc}") from None
    except OpsError as exc:  # metrics port taken, log file unwritable (dashboard)
        raise UsageError(str(exc)) from None


def check_args(argv: list[str]) -> tuple[argparse.Namespace, Any, Any, str | None]:
    """Every value of the command line, checked: the arguments, the scenario, the
    handler and the broker URL (None: memory)."""
    args = build_parser().parse_args(argv)
    url, source = resolve_broker(args.broker, args.broker_file)
    assert url is not None
    check_broker(url, source)
    args.broker_source = source  # names the URL in an error when the broker opens
    if not args.demo:
        for flag, value in (("--json", args.json), ("--duration", args.duration)):
            if value is not None:
                raise UsageError(f"{flag} applies to headless runs; add --demo")
    elif args.read_only:
        raise UsageError(
            "--read-only applies to the dashboard (a headless run has no keys "
            "to refuse); drop --demo"
        )
    for flag, path in (("--json", args.json), ("--log-file", args.log_file)):
        if path is not None:
            check_output_path(flag, path)
    check_evidence(args)
    check_distinct_outputs(args)
    if args.theme is not None:
        check_theme(args.theme)
    scenario = load_scenario(args.scenario)
    handler = load_handler(args.handler) if args.handler else None
    return args, scenario, handler, None if url == "memory" else url


def _run_mode(args: argparse.Namespace, scenario: Any, handler: Any, broker: str | None) -> int:
    if args.demo:
        from ccdash.headless.run import run_headless

        return run_headless(
            scenario,
            duration=args.duration,
            json_path=args.json,
            seed=args.seed,
            handler=handler,
            metrics_port=args.metrics_port,
            log_path=args.log_file,
            broker=broker,
            record=args.record,
            record_bodies=args.record_bodies,
            plot=args.plot,
            on_error=lambda msg: print(f"ccdash: error: {sanitize(msg, 2000)}", file=sys.stderr),
        )
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("the dashboard needs a terminal (no TTY here); run headless with --demo")
    try:
        from ccdash.tui.launch import run_tui
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("ccdash.tui"):
            raise UsageError(
                "the dashboard is not available in this build; run headless with --demo"
            ) from None
        raise
    ops = tui_options(
        run_tui,
        metrics_port=args.metrics_port,
        log_file=args.log_file,
        broker=broker,
        record=args.record,
        record_bodies=args.record_bodies or None,
        read_only=args.read_only,
    )
    code = run_tui(scenario=scenario, handler=handler, theme=args.theme, seed=args.seed, **ops)
    return int(code or 0)


def tui_options(run_tui: Callable[..., Any], **options: Any) -> dict[str, Any]:
    """The options given on the command line, if the dashboard takes them; a usage
    error for one it does not (never silently dropped)."""
    params = inspect.signature(run_tui).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    out = {}
    for name, value in options.items():
        if value is None:
            continue
        if not (takes_any or name in params):
            flag = "--" + name.replace("_", "-")
            raise UsageError(
                f"{flag}: the dashboard does not support it yet in this version; use it with --demo"
            )
        out[name] = value
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ccdash` console script; returns the exit status."""
    escape_unencodable(sys.stdout, sys.stderr)
    if logging.lastResort is not None:  # library warnings with no handler set up
        logging.lastResort.setFormatter(SafeFormatter())
    try:
        with secrets_kept_in_memory():  # no process a handler starts inherits them
            return run(sys.argv[1:] if argv is None else argv)
    except (UsageError, ScenarioError) as exc:
        text = " ".join(sanitize(exc, 2000, keep="\n\t").split())
        print(f"ccdash: error: {text}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C, or one before the run started
        print("ccdash: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `ccdash --demo | head`: the reader went away; stop quietly
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else 0


if __name__ == "__main__":
    raise SystemExit(main())
