"""A hostile-text corpus through every surface that shows outside text, checked on the
raw bytes written (issue #12): headless output on a terminal (a real pty) and in a
pipe, the JSON report, the log file, a worker's stderr and the dashboard.

The corpus rides in a scenario file (name, description, drill and alert names, alert
message) and in a user handler's errors; on a worker it rides in handler errors and a
forged control command. Nothing that could act on a terminal may come out: no OSC
(clipboard, title, hyperlink), no injected CSI, no C1 controls, no bidi controls, no
NUL or BEL, no lone surrogate; Rich markup reads as the literal text.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
import uuid
from pathlib import Path

import pytest
from support.polling import wait_until
from support.redis_fixtures import RedisServer

CCDASH = str(Path(sys.executable).parent / "ccdash")

CORPUS = {
    "osc52": "\x1b]52;c;ZWNobyBwd25lZA==\x07",
    "osc0": "\x1b]0;pwned-title\x07",
    "osc8": "\x1b]8;;http://evil.example/\x1b\\link\x1b]8;;\x1b\\",
    "csi": "\x1b[2J\x1b[6n\x1b[?1049h",
    "c1-csi": "\u009b6n",
    "c1-osc": "\u009d0;c1-title\u009c",
    "bidi": "\u202eevil\u202c \u2066iso\u2069",
    "nul-bel": "nul\x00byte\x07",
    "markup": "[bold red]markup[/bold red]",
    "click": "[@click=app.quit]click[/]",
}
ALL = " ".join(CORPUS.values())
LONG = "L" * 20_000  # a scenario's free text is cut to its 1,000-character limit
SURROGATE = "lone \ud800 surrogate"  # a TOML file cannot hold one; a handler error can

# Bytes that must never be written. Rich's own styling (ESC [ ... m, cursor moves) is
# allowed on a terminal, so injected CSI is recognised by the corpus' own sequences.
FORBIDDEN = [
    b"\x1b]",
    b"\x1bP",
    b"\x1b_",
    b"\x1b[2J",
    b"\x1b[6n",
    b"\x1b[?1049h",
    b"\x07",
    b"\x00",
    *(ch.encode() for ch in "\u009b\u009d\u009c\u202e\u202c\u2066\u2069"),
    "\ud800".encode("utf-8", "surrogatepass"),
]

HANDLER = '''
import zlib

CORPUS = {corpus!r}


async def handle(d):
    """Fail one delivery in four with the corpus (and a lone surrogate) as the error."""
    if zlib.crc32(d.message_id.encode()) % 4 == 0:
        raise RuntimeError(CORPUS)
'''


def assert_inert(raw: bytes, where: str, *, tty: bool = False) -> None:
    """No forbidden byte sequence in `raw`; without a terminal, no ESC at all."""
    for bad in FORBIDDEN:
        assert bad not in raw, f"{where}: wrote {bad!r} at {raw.find(bad)}"
    if not tty:
        assert b"\x1b" not in raw, f"{where}: wrote an ESC"


def toml_str(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's, for these characters)."""
    return json.dumps(text)


def scenario_text() -> str:
    return f"""
[scenario]
name = {toml_str(ALL)}
description = {toml_str(CORPUS["osc52"] + LONG[:900])}
duration = 3
seed = 5
[engine]
consumers = 2
heartbeat_interval = 0.2
heartbeat_timeout = 0.8
max_attempts = 2
backoff_base = 0.01
backoff_max = 0.05
[load]
rate = 40
[handler]
latency = "constant"
ms = 5
[[drills]]
at = 0.5
action = "kill"
target = "c1"
name = {toml_str(CORPUS["osc0"] + CORPUS["click"] + CORPUS["c1-osc"])}
[[alerts]]
name = {toml_str(CORPUS["osc52"] + CORPUS["bidi"] + CORPUS["markup"])}
metric = "queue_depth"
op = ">="
threshold = 0
message = {toml_str(CORPUS["csi"] + CORPUS["c1-csi"] + CORPUS["nul-bel"])}
"""


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    """A scratch directory with the hostile scenario and the hostile handler."""
    (tmp_path / "hostile.toml").write_text(scenario_text())
    (tmp_path / "hostile_jobs.py").write_text(HANDLER.format(corpus=f"{ALL} {SURROGATE} {LONG}"))
    return tmp_path


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CCDASH_BROKER", "COLUMNS")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp), os.environ.get("PYTHONPATH")]))
    return env


DEMO = ["--demo", "--scenario", "hostile.toml", "--handler", "hostile_jobs:handle"]


def test_headless_in_a_pipe_report_and_log_file_stay_inert(hostile: Path) -> None:
    """Plain output, the --json report and the --log-file: no byte that could act on a
    terminal, the hostile names shown as literal escapes; report and log are 0600 even
    under umask 0."""
    proc = subprocess.run(
        [CCDASH, *DEMO, "--json", "r.json", "--log-file", "ops.log"],
        cwd=hostile,
        capture_output=True,
        timeout=90,
        env=_env(hostile),
        preexec_fn=lambda: os.umask(0),
    )
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    assert_inert(out, "headless output")
    assert b"\\x1b]52;c;ZWNobyBwd25lZA==\\x07" in out  # the name, shown literally
    assert b"[@click=app.quit]click[/]" in out  # the drill name, markup as text
    assert b"\\u202eevil" in out
    report = (hostile / "r.json").read_bytes()
    log = (hostile / "ops.log").read_bytes()
    for name, raw in (("report", report), ("log file", log)):
        assert_inert(raw, name)
    assert b"\\u001b]52" in report  # the corpus did reach it (JSON-escaped)
    assert b"\\\\x1b]52" in log  # sanitised, then JSON-escaped: `jq -r` prints it inert
    assert b"\\\\ud800" in log  # a handler error with a lone surrogate was logged, escaped
    for name in ("r.json", "ops.log"):
        assert (hostile / name).stat().st_mode & 0o777 == 0o600, name


def _run_in_pty(argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> bytes:
    """Run `argv` with a pseudo-terminal (200x50) as its stdin, stdout and stderr; all
    the bytes it wrote."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    env = {**env, "TERM": "xterm-256color"}
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed its side
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        os.close(master)
    assert time.monotonic() < deadline, "the run did not end in time"
    return b"".join(chunks)


def test_headless_on_a_terminal_stays_inert(hostile: Path) -> None:
    """The live panel and the Rich report on a real pty: no OSC, injected CSI, C1, bidi,
    NUL or BEL; the hostile names read as literal escapes."""
    raw = _run_in_pty([CCDASH, *DEMO], hostile, _env(hostile), timeout=90)
    assert b"ccdash demo report" in raw, raw[-2000:]
    assert_inert(raw, "headless on a terminal", tty=True)
    assert b"\\x1b]52;c;ZWNobyBwd25lZA==" in raw
    assert b"[@click=app.quit]" in raw


def test_worker_stderr_stays_inert(hostile: Path, redis_server: RedisServer) -> None:
    """A worker whose handler fails with the corpus, sent a forged command carrying it:
    its stderr logs both, escaped."""
    import asyncio

    from ccdash.brokers.base import QueueConfig
    from ccdash.brokers.redis import RedisBroker
    from ccdash.fleet.control import send_raw

    url = f"{redis_server.url}?queue=hostile-{uuid.uuid4().hex[:8]}"
    log = hostile / "worker.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [
                CCDASH,
                "worker",
                "--broker",
                url,
                "--handler",
                "hostile_jobs:handle",
                "--name",
                "w1",
                "--max-attempts",
                "1",
            ],
            cwd=hostile,
            env=_env(hostile),
            stdout=fh,
            stderr=fh,
        )
    try:

        async def feed() -> None:
            broker = RedisBroker.from_url(url, QueueConfig(max_attempts=1), worker="feeder")
            await broker.open()
            try:
                for i in range(40):
                    await broker.publish({"i": i})
            finally:
                await broker.close()

        asyncio.run(feed())
        wait_until(lambda: b"dead" in log.read_bytes(), 30, "a dead-letter line", step=0.2)
        asyncio.run(send_raw(url, "w1", {"c": json.dumps({"action": ALL, "nonce": ALL})}))
        wait_until(lambda: b"refused" in log.read_bytes(), 30, "the refusal line", step=0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    raw = log.read_bytes()
    assert b"refused control command" in raw and b"dead" in raw, raw[-3000:]
    assert_inert(raw, "worker stderr")
    assert b"\\x1b]52;c;ZWNobyBwd25lZA==" in raw


async def test_dashboard_shows_a_hostile_scenario_name_literally() -> None:
    """The dashboard titled with the whole corpus: a clean screen, the name as literal text
    (hostile bodies, errors, ids and alert names: tests/test_tui_hostile.py)."""
    import unicodedata

    from support.dashboard import advance, make_app, quit_app, running, screen_text

    app = make_app(title=ALL)
    async with running(app) as pilot:
        await advance(app, pilot, 1.0)
        text = screen_text(app)
        app.export_screenshot()  # would raise on a character the terminal cannot take
        await quit_app(app, pilot)
    for line in text.splitlines():
        bad = [ch for ch in line if unicodedata.category(ch) in ("Cc", "Cs", "Cf")]
        assert not bad, f"raw {bad!r} on screen in {line!r}"
    assert "\\x1b]52" in text


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_a_handler_error_with_a_lone_surrogate_is_stored_escaped(
    kind: str, tmp_path: Path
) -> None:
    """A handler raising text with a lone surrogate: the message dead-letters as `failed`
    with the text escaped; the broker's write does not fail and no consumer crashes."""
    from ccdash import Engine, EngineConfig

    async def handler(_: object) -> None:
        raise RuntimeError(SURROGATE)

    url = "memory" if kind == "memory" else f"sqlite:///{tmp_path / 'q.db'}"
    cfg = EngineConfig(consumers=1, max_attempts=2, backoff_base=0.01, backoff_max=0.02)
    async with Engine(cfg, handler=handler, broker=url) as engine:
        await engine.publish({"n": 1})
        await engine.join(timeout=20)
        snap = engine.snapshot()
    [dead] = snap.dead_letters
    assert dead.reason == "failed" and dead.last_error == "RuntimeError: lone \\ud800 surrogate"
    assert snap.failovers == 0


def test_bench_output_with_a_hostile_broker_path_stays_inert(tmp_path: Path) -> None:
    """`ccdash bench` on a SQLite file whose name holds OSC 52: the path is printed
    escaped, no byte that could act on a terminal."""
    name = "q" + CORPUS["osc52"] + CORPUS["bidi"] + ".db"
    proc = subprocess.run(
        [
            CCDASH,
            "bench",
            "--broker",
            f"sqlite:///{name}",
            "--messages",
            "200",
            "--rounds",
            "1",
            "--prefetch",
            "1",
            "--consumers",
            "1",
        ],
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
        env=_env(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_inert(proc.stdout + proc.stderr, "bench output")
    assert b"\\x1b]52;c;ZWNobyBwd25lZA==\\x07" in proc.stdout


def test_a_recordings_report_stays_inert_and_private(hostile: Path) -> None:
    """`ccdash replay F --report --json R` on a recording of the hostile scenario: the
    printed report is inert and R is 0600 under umask 0 (a recording is outside input)."""
    env = _env(hostile)
    run = subprocess.run(
        [CCDASH, *DEMO, "--record", "run.rec", "--duration", "2"],
        cwd=hostile,
        capture_output=True,
        timeout=90,
        env=env,
    )
    assert run.returncode in (0, 1), run.stderr[-2000:]
    proc = subprocess.run(
        [CCDASH, "replay", "run.rec", "--report", "--json", "r.json"],
        cwd=hostile,
        capture_output=True,
        timeout=90,
        env=env,
        preexec_fn=lambda: os.umask(0),
    )
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    assert_inert(proc.stdout + proc.stderr, "replayed report")
    assert b"\\x1b]52;c;ZWNobyBwd25lZA==\\x07" in proc.stdout
    assert (hostile / "r.json").stat().st_mode & 0o777 == 0o600


def test_a_signed_control_command_nested_too_deep_is_refused_not_raised() -> None:
    """A command that passes the signature check but holds lists nested 100,000 deep is
    'malformed', like any bad JSON; it does not raise RecursionError into the listener."""
    from ccdash.fleet.control import sign, verify

    secret = b"k" * 32
    raw = b'{"args":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    verdict = verify(secret, raw, sign(secret, raw).encode(), worker="w", queue="q", now=0.0)
    assert verdict.command is None and verdict.reason == "malformed command"


def test_a_module_planted_in_the_working_directory_does_not_shadow_the_standard_library(
    tmp_path: Path,
) -> None:
    """`cd /tmp && ccdash --demo --handler myjobs:handle`: the handler module is found in
    the working directory, but a netrc.py another user left there is not imported in
    place of the standard library's (cwd went first in sys.path: their code ran as us)."""
    (tmp_path / "myjobs.py").write_text(
        "import netrc\n\nassert hasattr(netrc, 'NetrcParseError')\n\n"
        "async def handle(delivery):\n    pass\n"
    )
    marker = tmp_path / "planted-code-ran"
    (tmp_path / "netrc.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    ccdash_bin = str(Path(sys.executable).parent / "ccdash")
    proc = subprocess.run(
        [ccdash_bin, "--demo", "--duration", "0.5", "--handler", "myjobs:handle"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in proc.stderr and "--handler" not in proc.stderr, proc.stderr
    assert not marker.exists()
