"""Bad input of every class, checked before anything runs: exit 2, one line naming the
field, the value and what is allowed, never a traceback (issue #12).

Each table is one input class; every case runs in-process through `cli.main` (the
console script's entry point), and a sample of each class runs through the real
console script too, so the top-level guard is what a user meets.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ccdash import cli

CCDASH = str(Path(sys.executable).parent / "ccdash")
HANDLER = "ccdash_bad_inputs_jobs:handle"
PASSWORD = "hunter2-not-in-output"
R = "redis://127.0.0.1:1"  # never reached: every case fails before connecting

# -- the tables: (argv after `ccdash`, fragments the one error line must contain) --------

CLI_NUMBERS: dict[str, tuple[list[str], list[str]]] = {
    "duration-zero": (["--demo", "--duration", "0"], ["--duration", "greater than 0", "'0'"]),
    "duration-negative": (["--demo", "--duration", "-1"], ["--duration", "'-1'"]),
    "duration-inf": (["--demo", "--duration", "inf"], ["--duration", "at most 86400"]),
    "duration-nan": (["--demo", "--duration", "nan"], ["--duration", "'nan'"]),
    "duration-huge": (["--demo", "--duration", "1e300"], ["--duration", "at most 86400"]),
    "duration-over-a-day": (["--demo", "--duration", "86401"], ["--duration", "86400"]),
    "duration-text": (["--demo", "--duration", "soon"], ["--duration", "'soon'"]),
    "duration-empty": (["--demo", "--duration", ""], ["--duration", "''"]),
    "seed-text": (["--demo", "--seed", "abc"], ["--seed", "integer", "'abc'"]),
    "seed-negative": (["--demo", "--seed", "-1"], ["--seed", "from 0"]),
    "seed-5000-digits": (["--demo", "--seed", "7" * 5000], ["--seed", "integer"]),
    "seed-over-63-bits": (["--demo", "--seed", str(2**64)], ["--seed", str(2**63 - 1)]),
    "seed-fraction": (["--demo", "--seed", "1.5"], ["--seed", "'1.5'"]),
    "metrics-port-high": (["--demo", "--metrics-port", "70000"], ["--metrics-port", "65535"]),
    "metrics-port-5000-digits": (
        ["--demo", "--metrics-port", "9" * 5000],
        ["--metrics-port", "port number"],
    ),
    "json-without-demo": (["--json", "r.json"], ["--json", "--demo"]),
}

# Each runs on `ccdash --demo --broker`, `ccdash worker --broker` and `ccdash bench --broker`.
REDIS_URLS: dict[str, tuple[str, list[str]]] = {
    "port-over-65535": (f"redis://u:{PASSWORD}@127.0.0.1:70000/0", ["port '70000'", "65535"]),
    "port-huge": ("redis://127.0.0.1:99999999999999/0", ["port", "1 to 65535"]),
    "port-text": ("redis://127.0.0.1:sixty/0", ["port 'sixty'", "1 to 65535"]),
    "port-zero": ("redis://127.0.0.1:0/0", ["port 0", "1 to 65535"]),
    "db-text": (f"{R}/abc", ["database 'abc'", "integer from 0"]),
    "password-not-utf8": ("redis://:\udcff\udcfe@127.0.0.1:1/0", ["not UTF-8"]),
    "db-negative": (f"{R}/-1", ["database '-1'"]),
    "db-twice": (f"{R}/1?db=2", ["database is given twice"]),
    "unknown-option": (f"{R}/0?bogus=1", ["unknown option 'bogus'", "known: queue"]),
    "option-typo": (f"{R}/0?tiemout=1", ["'tiemout'", "did you mean 'timeout'"]),
    "tls-option-without-tls": (f"{R}/0?ssl_cert_reqs=none", ["ssl_cert_reqs", "rediss://"]),
    "tls-option-bad-value": (
        "rediss://127.0.0.1:1/0?ssl_cert_reqs=maybe",
        ["ssl_cert_reqs='maybe'", "none, optional, required"],
    ),
    "tls-ca-missing": (
        "rediss://127.0.0.1:1/0?ssl_ca_certs=/no/such/ca.pem",
        ["ssl_ca_certs", "existing file"],
    ),
    "timeout-negative": (f"{R}/0?timeout=-1", ["timeout='-1'", "0.01 to 300 seconds"]),
    "timeout-text": (f"{R}/0?timeout=abc", ["timeout='abc'"]),
    "timeout-huge": (f"{R}/0?timeout=1e9", ["timeout='1e9'", "300"]),
    "timeout-nan": (f"{R}/0?timeout=nan", ["timeout='nan'"]),
    "ttl-too-short": (f"{R}/0?ttl=0.1", ["ttl='0.1'", "0.3 to 3600"]),
    "fetch-zero": (f"{R}/0?fetch=0", ["fetch='0'", "1 to 10000"]),
    "fetch-huge": (f"{R}/0?fetch=99999999", ["fetch='99999999'"]),
    "fetch-fraction": (f"{R}/0?fetch=1.5", ["fetch='1.5'", "integer"]),
    "queue-empty": (f"{R}/0?queue=", ["queue=''", "letters, digits"]),
    "queue-escape": (f"{R}/0?queue=a%1B%5D52%3Bc%3Bx%07", ["queue=", "\\x1b", "letters"]),
    "worker-newline": (f"{R}/0?worker=a%0Ab", ["worker=", "\\x0a"]),
    "queue-twice": (f"{R}/0?queue=a&queue=b", ["'queue' given twice"]),
    "malformed-query": (f"{R}/0?=&&=", ["malformed query"]),
    "no-host": ("redis://", ["needs a host"]),
    "password-no-host": (f"redis://:{PASSWORD}@/0", ["needs a host"]),
    "fragment": (f"{R}/0#x", ["fragment"]),
}

# `ccdash --demo --broker` and `ccdash bench --broker` (a worker takes redis only).
OTHER_URLS: dict[str, tuple[str, list[str]]] = {
    "sqlite-relative-missing-dir": (
        "sqlite:///tmp/x.db",
        ["tmp/x.db", "does not exist", "sqlite:////tmp/x.db", "four slashes"],
    ),
    "sqlite-host": ("sqlite://host/x.db", ["names a host"]),
    "sqlite-bad-durability": ("sqlite:///q.db?durability=maybe", ["durability"]),
    "sqlite-unknown-option": ("sqlite:///q.db?bogus=1", ["unknown option 'bogus'"]),
    "sqlite-option-twice": (  # a redis URL refuses it too; the last one silently won
        "sqlite:///q.db?durability=full&durability=off",
        ["durability", "given twice"],
    ),
    "sqlite-no-path": ("sqlite://", ["needs a file path"]),
    "unknown-scheme": ("kafka://x:1", ["unknown broker", "memory"]),
    "no-scheme": ("localhost:6379", ["unknown broker"]),
}

WORKER_ARGS: dict[str, tuple[list[str], list[str]]] = {
    "concurrency-zero": (["--concurrency", "0"], ["--concurrency", "1 to 1000", "'0'"]),
    "concurrency-huge": (["--concurrency", "100000000"], ["--concurrency", "1 to 1000"]),
    "concurrency-text": (["--concurrency", "many"], ["--concurrency", "'many'"]),
    "prefetch-zero": (["--prefetch", "0"], ["--prefetch", "1 to 10000"]),
    "prefetch-huge": (["--prefetch", "1000000"], ["--prefetch", "1 to 10000"]),
    "visibility-zero": (["--visibility-timeout", "0"], ["--visibility-timeout", "greater than 0"]),
    "visibility-huge": (["--visibility-timeout", "1e12"], ["--visibility-timeout", "86400"]),
    "visibility-nan": (["--visibility-timeout", "nan"], ["--visibility-timeout", "'nan'"]),
    "heartbeat-ttl-short": (["--heartbeat-ttl", "0.1"], ["--heartbeat-ttl", "0.3 to 3600"]),
    "heartbeat-above-lease": (
        ["--heartbeat-ttl", "40"],
        ["--heartbeat-ttl 40", "--visibility-timeout (30)"],
    ),
    "max-attempts-zero": (["--max-attempts", "0"], ["--max-attempts", "1 to 1000"]),
    "max-attempts-huge": (["--max-attempts", "5000"], ["--max-attempts", "1 to 1000"]),
    "grace-negative": (["--grace", "-1"], ["--grace", "0 to 3600"]),
    "grace-huge": (["--grace", "1e9"], ["--grace", "0 to 3600"]),
    "name-empty": (["--name", ""], ["--name", "letters, digits"]),
    "name-osc52": (
        ["--name", "w\x1b]52;c;ZWNobyBwd25lZA==\x07"],
        ["--name", "got 'w\\x1b]52;c;ZWNobyBwd25lZA==\\x07'"],  # one backslash, as typed
    ),
    "name-too-long": (["--name", "w" * 200], ["--name", "1 to 100"]),
    "name-space": (["--name", "a b"], ["--name", "'a b'"]),
    "broker-not-redis": (["--broker", "sqlite:///q.db"], ["--broker", "redis://"]),
}

BENCH_ARGS: dict[str, tuple[list[str], list[str]]] = {
    "messages-zero": (["--messages", "0"], ["--messages", "1 to 100000000"]),
    "messages-huge": (["--messages", "1000000000000"], ["--messages", "1 to 100000000"]),
    "consumers-huge": (["--consumers", "5000"], ["--consumers", "1 to 1000"]),
    "prefetch-zero": (["--prefetch", "0"], ["--prefetch", "1 to 10000"]),
    "rounds-huge": (["--rounds", "1000"], ["--rounds", "1 to 100"]),
    "publish-batch-zero": (["--publish-batch", "0"], ["--publish-batch", "1 to 100000"]),
}

# (command, flag, path maker): a path that cannot take the output file.
OUTPUT_PATHS: dict[str, tuple[list[str], list[str]]] = {
    "json-directory": (["--demo", "--json", "."], ["--json", "'.'", "is a directory"]),
    "json-missing-dir": (
        ["--demo", "--json", "no/such/r.json"],
        ["--json", "'no/such'", "does not exist"],
    ),
    "json-empty": (["--demo", "--json", ""], ["--json", "expected a file path"]),
    "log-file-directory": (["--demo", "--log-file", "."], ["--log-file", "is a directory"]),
    "log-file-missing-dir": (
        ["--demo", "--log-file", "no/such/ops.log"],
        ["--log-file", "does not exist"],
    ),
    "log-file-socket": (["--demo", "--log-file", "sock"], ["--log-file", "not a regular file"]),
    "audit-log-directory": (
        ["worker", "--broker", f"{R}/0", "--handler", HANDLER, "--audit-log", "."],
        ["--audit-log", "is a directory"],
    ),
    "audit-log-missing-dir": (
        ["worker", "--broker", f"{R}/0", "--handler", HANDLER, "--audit-log", "no/such/a.log"],
        ["--audit-log", "does not exist"],
    ),
    "bench-json-directory": (["bench", "--json", "."], ["--json", "is a directory"]),
    "json-is-the-recording": (
        ["--demo", "--json", "run.out", "--record", "run.out"],
        ["--json", "--record", "'run.out'", "same file"],
    ),
    "log-file-is-the-report": (
        ["--demo", "--log-file", "r.out", "--json", "./r.out"],
        ["--json", "--log-file", "same file"],
    ),
    "plot-is-the-log-file": (
        ["--demo", "--log-file", "t.svg", "--plot", "t.svg"],
        ["--log-file", "--plot", "same file"],
    ),
}

SCENARIOS: dict[str, tuple[str, list[str]]] = {
    "integer-5000-digits": (
        "[scenario]\nseed = " + "1" * 5000 + "\n",
        [":2:", "more than 4300 digits"],
    ),
    "arrays-nested-deep": ("x = " + "[" * 100_000 + "]" * 100_000 + "\n", ["nested too deeply"]),
    "tables-nested-deep": (
        "x = " + "{a = " * 50_000 + "1" + "}" * 50_000 + "\n",
        ["nested too deeply"],
    ),
    "visibility-a-year": (
        "[engine]\nvisibility_timeout = 31536000\n",
        ["engine.visibility_timeout", "at most 86400"],
    ),
    "prefetch-million": ("[engine]\nprefetch = 1000000\n", ["engine.prefetch", "at most 10000"]),
    "batch-size-million": (
        "[engine]\nbatch_size = 1000000\n",
        ["engine.batch_size", "at most 10000"],
    ),
    "consumers-huge": ("[engine]\nconsumers = 100000\nmax_consumers = 100000\n", ["at most 10000"]),
    "heartbeat-interval-above-timeout": (
        "[engine]\nheartbeat_interval = 5\nheartbeat_timeout = 2\n",
        ["engine.heartbeat_interval", "heartbeat_interval (5)", "heartbeat_timeout (2)"],
    ),
    "max-body-zero": (
        "[engine]\nmax_body_bytes = 0\n",
        ["engine.max_body_bytes", "at least 1", "got 0"],
    ),
    "heartbeat-that-spins": (
        "[engine]\nheartbeat_interval = 0.0001\nheartbeat_timeout = 0.0002\n"
        "visibility_timeout = 0.0003\n",
        ["engine.heartbeat_interval", "from 0.05 to 3600", "got 0.0001"],
    ),
    "prefetch-zero": ("[engine]\nprefetch = 0\n", ["engine.prefetch", "at least 1", "got 0"]),
    "backoff-negative": (
        "[engine]\nbackoff_base = -0.5\n",
        ["engine.backoff_base", "not be negative", "got -0.5"],
    ),
    "utilisation-above-one": (
        "[engine]\ntarget_utilisation = 1.5\n",
        ["engine.target_utilisation", "got 1.5"],
    ),
    "drill-unknown-consumer": (
        '[engine]\nconsumers = 4\n[[drills]]\nat = 1\naction = "kill"\ntarget = "c99"\n',
        ["drills[1].target", "'c99'", "c1..c4"],
    ),
    "slow-unknown-consumer": (
        "[engine]\nconsumers = 4\n[handler]\nslow = { c99 = 2.0 }\n",
        ["handler.slow.c99", "c1..c4"],
    ),
    "second-drill-beyond-replacements": (
        '[engine]\nconsumers = 2\n[[drills]]\nat = 1\naction = "kill"\ntarget = "c1"\n'
        '[[drills]]\nat = 2\naction = "hang"\ntarget = "c4"\n',
        ["drills[2].target", "'c4'", "c1..c3"],
    ),
    "drill-id-huge": (
        '[[drills]]\nat = 1\naction = "kill"\ntarget = "c' + "9" * 50 + '"\n',
        ["drills[1].target"],
    ),
}


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch working directory with an importable async handler, no $CCDASH_BROKER."""
    (tmp_path / "ccdash_bad_inputs_jobs.py").write_text("async def handle(d):\n    return None\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("CCDASH_BROKER", raising=False)
    return tmp_path


def _one_line(argv: list[str], fragments: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert code == 2, (code, out, err)
    # The contract's prefix, for `ccdash worker` too: scripts match `^ccdash: error: `.
    assert len(lines) == 1 and lines[0].startswith("ccdash: error: "), err
    assert "Traceback" not in err + out and out == ""
    assert PASSWORD not in err
    assert "\x1b" not in err and "\x07" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.mark.parametrize("value", ["", " "])
def test_an_empty_scenario_path_names_the_flag(
    value: str, here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--scenario ""` (an unset shell variable): the flag, the value and what it takes;
    it read "ccdash: error: is a directory, expected a .toml scenario file"."""
    _one_line(
        ["--demo", "--scenario", value],
        ["--scenario", f"got {value!r}", "a .toml scenario file or a built-in name"],
        capsys,
    )


@pytest.mark.parametrize("case", sorted(CLI_NUMBERS))
def test_bad_number_on_the_command_line(
    case: str, here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A number out of its documented range: exit 2, one line with the flag and the range."""
    argv, fragments = CLI_NUMBERS[case]
    _one_line(argv, fragments, capsys)


@pytest.mark.parametrize("command", ["ccdash", "worker", "bench"])
@pytest.mark.parametrize("case", sorted(REDIS_URLS))
def test_bad_redis_url_on_every_command(
    case: str, command: str, here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A redis URL with a bad port, db or option: exit 2 naming it, on every command."""
    url, fragments = REDIS_URLS[case]
    argv = {
        "ccdash": ["--demo", "--broker", url],
        "worker": ["worker", "--broker", url, "--handler", HANDLER],
        "bench": ["bench", "--broker", url],
    }[command]
    _one_line(argv, ["--broker", *fragments], capsys)


@pytest.mark.parametrize("command", ["ccdash", "bench"])
@pytest.mark.parametrize("case", sorted(OTHER_URLS))
def test_bad_sqlite_or_unknown_url(
    case: str, command: str, here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A sqlite URL that cannot work, or an unknown scheme: exit 2 with what to write."""
    url, fragments = OTHER_URLS[case]
    argv = ["--demo", "--broker", url] if command == "ccdash" else ["bench", "--broker", url]
    _one_line(argv, ["--broker", *fragments], capsys)


@pytest.mark.parametrize("case", sorted(WORKER_ARGS))
def test_bad_worker_argument(case: str, here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`ccdash worker` with a value out of range: exit 2 before connecting."""
    extra, fragments = WORKER_ARGS[case]
    argv = ["worker", "--broker", f"{R}/0", "--handler", HANDLER, *extra]
    _one_line(argv, fragments, capsys)


@pytest.mark.parametrize("case", sorted(BENCH_ARGS))
def test_bad_bench_argument(case: str, here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`ccdash bench` with a value out of range: exit 2 before measuring."""
    extra, fragments = BENCH_ARGS[case]
    _one_line(["bench", *extra], fragments, capsys)


@pytest.mark.parametrize("case", sorted(OUTPUT_PATHS))
def test_bad_output_path_is_refused_before_the_run(
    case: str, here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json, --log-file, --audit-log that cannot be written: exit 2 before anything runs."""
    import socket

    with socket.socket(socket.AF_UNIX) as s:
        s.bind("sock")
        argv, fragments = OUTPUT_PATHS[case]
        _one_line(argv, fragments, capsys)
    assert not [p for p in here.rglob("*") if p.suffix in (".json", ".log", ".db")]


@pytest.mark.parametrize("case", sorted(SCENARIOS))
def test_bad_scenario_file(case: str, here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A scenario with a huge number, deep nesting, an out-of-range setting or a consumer
    that cannot exist: exit 2, one line with the file and the field."""
    text, fragments = SCENARIOS[case]
    (here / "bad.toml").write_text(text)
    _one_line(["--demo", "--scenario", "bad.toml"], ["bad.toml", *fragments], capsys)


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/dev/zero", "not a regular file"),
        ("fifo.toml", "not a regular file"),
        ("huge.toml", "larger than 1024 KiB"),
    ],
    ids=["dev-zero", "fifo", "two-megabytes"],
)
def test_a_scenario_that_is_not_a_small_file_is_refused(
    path: str, says: str, here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--scenario /dev/zero, a FIFO or a 2 MB file: one line at once (the read never ended
    or took the whole file into memory)."""
    os.mkfifo(here / "fifo.toml")
    (here / "huge.toml").write_text("# " + "x" * 2_000_000 + "\n")
    _one_line(["--demo", "--scenario", path], [path, says], capsys)


def test_scenario_with_a_byte_order_mark_loads(here: Path) -> None:
    """A UTF-8 BOM at the start of a scenario file (some editors write one) is accepted."""
    from ccdash.scenario import load_scenario

    (here / "bom.toml").write_bytes(b'\xef\xbb\xbf[scenario]\nname = "bom"\nduration = 3\n')
    assert load_scenario("bom.toml").name == "bom"


def test_unexpected_error_while_checking_is_one_line_with_a_hint(
    here: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bug in a check (any exception) still gives one line and exit 2, asking for a report."""

    def broken(_: object) -> None:
        raise RuntimeError("a bug in a check")

    monkeypatch.setattr(cli, "load_scenario", broken)
    line = _one_line(["--demo"], ["RuntimeError", "a bug in a check", "report"], capsys)
    assert line.startswith("ccdash: error: the command line could not be checked")


SUBPROCESS_SAMPLE = [
    ["--demo", "--duration", "1e300"],
    ["--demo", "--broker", f"{R}/0?bogus=1"],
    ["--demo", "--broker", f"redis://u:{PASSWORD}@127.0.0.1:70000/0"],
    ["worker", "--broker", f"{R}/0?ssl_cert_reqs=none", "--handler", HANDLER],
    ["bench", "--broker", f"{R}/0?bogus=1"],
    ["--demo", "--scenario", "deep.toml"],
    ["--demo", "--scenario", "digits.toml"],
    ["--demo", "--json", "."],
]


def test_the_console_script_never_prints_a_traceback(here: Path) -> None:
    """A sample of every class through the real `ccdash`: exit 2, one line, no traceback."""
    (here / "deep.toml").write_text(SCENARIOS["arrays-nested-deep"][0])
    (here / "digits.toml").write_text(SCENARIOS["integer-5000-digits"][0])
    env = {k: v for k, v in os.environ.items() if k != "CCDASH_BROKER"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(here), os.environ.get("PYTHONPATH")]))
    for argv in SUBPROCESS_SAMPLE:
        proc = subprocess.run(
            [CCDASH, *argv], cwd=here, capture_output=True, text=True, timeout=60, env=env
        )
        assert proc.returncode == 2, (argv, proc.stderr)
        assert "Traceback" not in proc.stderr + proc.stdout, (argv, proc.stderr)
        assert len(proc.stderr.splitlines()) == 1 and PASSWORD not in proc.stderr, proc.stderr


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
async def test_publish_refuses_a_body_over_the_limit_and_unencodable_ones(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Over max_body_bytes: PayloadTooLarge naming the size and the limit; a cycle, a
    non-JSON type or a body nested too deeply: TypeError with the reason. Nothing is
    stored for any of them; the next good publish goes through."""
    from ccdash import Engine, EngineConfig, PayloadTooLarge

    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    cycle: dict[str, object] = {}
    cycle["self"] = cycle
    url = {
        "memory": "memory",
        "sqlite": f"sqlite:///{tmp_path / 'q.db'}",
        "redis": request.getfixturevalue("redis_url") if kind == "redis" else "",
    }[kind]
    async with Engine(
        EngineConfig(consumers=0, min_consumers=0, max_body_bytes=100), broker=url
    ) as engine:
        for body in (b"x" * 101, "x" * 99, {"k": "v" * 100}):
            with pytest.raises(PayloadTooLarge, match=r"over the limit of 100 \(max_body_bytes\)"):
                await engine.publish(body)
        for bad, reason in (
            (cycle, "Circular reference"),
            ({"t": object()}, "object"),
            (deep, "nested too deeply"),
        ):
            with pytest.raises(TypeError, match=reason):
                await engine.publish(bad)
        await engine.publish(b"x" * 100)
        assert engine.snapshot().published == 1


@pytest.mark.parametrize(
    ("priority", "dedup_id", "error", "says"),
    [
        (2**70, None, ValueError, "from -1000 to 1000"),
        (-1001, None, ValueError, "from -1000 to 1000"),
        ("high", None, TypeError, "must be an int, not str"),
        (1.5, None, TypeError, "not float"),
        (True, None, TypeError, "not bool"),
        (0, 12345, TypeError, "dedup_id must be a str or None, not int"),
        (0, b"x", TypeError, "not bytes"),
    ],
    ids=["huge", "below", "text", "float", "bool", "dedup-int", "dedup-bytes"],
)
async def test_publish_refuses_a_bad_priority_or_dedup_id(
    priority: object, dedup_id: object, error: type[Exception], says: str, tmp_path: Path
) -> None:
    """A priority outside -1000..1000 or not an int, a dedup id not a str: refused at
    publish with the reason (a huge one overflowed SQLite; a string crashed the memory
    broker's heap), nothing stored."""
    from ccdash import Engine, EngineConfig

    async with Engine(
        EngineConfig(consumers=0, min_consumers=0), broker=f"sqlite:///{tmp_path / 'q.db'}"
    ) as engine:
        with pytest.raises(error, match=says):
            await engine.publish({"n": 1}, priority=priority, dedup_id=dedup_id)  # type: ignore[arg-type]
        if dedup_id is None:  # publish_many takes no dedup id
            with pytest.raises(error, match=says):
                await engine.publish_many([{"n": 1}], priority=priority)  # type: ignore[arg-type]
        assert engine.snapshot().published == 0


def test_a_guessable_control_secret_is_refused(
    here: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A control secret under 16 bytes (file or $CCDASH_CONTROL_SECRET) is refused: anyone
    who can read the command stream in Redis could guess it offline and sign commands."""
    (here / "short.secret").write_text("hunter2\n")
    (here / "short.secret").chmod(0o600)
    worker = ["worker", "--broker", f"{R}/0", "--handler", HANDLER]
    _one_line([*worker, "--control-secret-file", "short.secret"], ["at least 16"], capsys)
    monkeypatch.setenv("CCDASH_CONTROL_SECRET", "hunter2")
    _one_line(worker, ["CCDASH_CONTROL_SECRET", "at least 16"], capsys)


@pytest.mark.parametrize("via", ["env", "file"])
@pytest.mark.parametrize("command", ["ccdash", "bench"])
def test_a_broker_that_cannot_be_used_is_named_by_where_its_url_came_from(
    via: str,
    command: str,
    here: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A URL from $CCDASH_BROKER or --broker-file that fails when opened (a missing
    directory) or is refused by the bench (a file in use) names that source, not --broker."""
    (here / "in-use.db").write_bytes(b"")
    url = {
        "ccdash": f"sqlite:///{here}/no-such-dir/q.db",
        "bench": f"sqlite:///{here}/in-use.db",
    }[command]
    argv = ["--demo", "--duration", "1"] if command == "ccdash" else ["bench"]
    if via == "env":
        monkeypatch.setenv("CCDASH_BROKER", url)
        source = "$CCDASH_BROKER: "
    else:
        (here / "broker.url").write_text(url + "\n")
        (here / "broker.url").chmod(0o600)
        argv += ["--broker-file", str(here / "broker.url")]
        source = "--broker-file: "
    line = _one_line(argv, [source], capsys)
    assert "--broker: " not in line
