"""Secrets stay off the command line and out of other users' reach (issue #12): the
broker URL from $CCDASH_BROKER or a 0600 --broker-file keeps the password out of a real
worker's /proc/PID/cmdline; a file others can read is refused; the audit log is
created 0600 whatever the umask."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from support.polling import wait_until
from support.redis_fixtures import RedisServer

from ccdash import cli
from ccdash.brokers.urls import BrokerURLError, check_url, redact_url

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "pw-" + uuid.uuid4().hex


@pytest.fixture
def locked_redis(redis_server_factory: object) -> RedisServer:
    """A private redis-server that requires PASSWORD."""
    server = redis_server_factory()  # type: ignore[operator]
    assert server.command("CONFIG", "SET", "requirepass", PASSWORD).startswith(b"+OK")
    return server  # type: ignore[no-any-return]


@pytest.mark.parametrize("source", ["env", "file"])
def test_the_password_is_not_on_a_real_workers_command_line(
    source: str, locked_redis: RedisServer, tmp_path: Path
) -> None:
    """A worker given the URL by $CCDASH_BROKER or --broker-file connects (the password
    works) and its /proc/PID/cmdline holds no trace of the password; nor does its log."""
    url = f"redis://:{PASSWORD}@127.0.0.1:{locked_redis.port}/0?queue=s{uuid.uuid4().hex[:6]}"
    env = {k: v for k, v in os.environ.items() if k != "CCDASH_BROKER"}
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT / "tests"), str(ROOT), os.environ.get("PYTHONPATH")])
    )
    env["CCDASH_TEST_OUT"] = str(tmp_path)
    argv = [
        sys.executable,
        "-m",
        "ccdash",
        "worker",
        "--handler",
        "support.fleet_handlers:record",
        "--name",
        "s1",
    ]
    if source == "env":
        env["CCDASH_BROKER"] = url
    else:
        secret = tmp_path / "broker-url"
        secret.write_text(url + "\n")
        secret.chmod(0o600)
        argv += ["--broker-file", str(secret)]
    log = tmp_path / "worker.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(argv, env=env, stdout=fh, stderr=fh, cwd=ROOT)
    try:

        def running() -> None:
            assert proc.poll() is None, log.read_text()

        wait_until(
            lambda: b"consumers on" in log.read_bytes(),
            30,
            "the worker's start line",
            guard=running,
        )
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert b"worker" in cmdline and PASSWORD.encode() not in cmdline
    assert PASSWORD not in log.read_text()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o660])
def test_a_broker_file_others_can_access_is_refused(
    mode: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--broker-file readable (or writable) by group or others: one line, exit 2, the
    password never shown, nothing run."""
    secret = tmp_path / "broker-url"
    secret.write_text(f"redis://:{PASSWORD}@127.0.0.1:1/0\n")
    secret.chmod(mode)
    assert cli.main(["--demo", "--broker-file", str(secret)]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("ccdash: error: --broker-file: ") and "chmod 600" in err
    assert f"{mode:03o}" in err and PASSWORD not in err and out == ""
    assert len(err.splitlines()) == 1


BROKER_SOURCES: dict[str, tuple[Callable[[Path], list[str]], list[str]]] = {
    "missing-file": (
        lambda d: ["--broker-file", str(d / "nope")],
        ["--broker-file", "cannot read"],
    ),
    "empty-file": (lambda d: ["--broker-file", _private(d, "")], ["--broker-file", "one line"]),
    "two-lines": (
        lambda d: ["--broker-file", _private(d, "memory\nmemory\n")],
        ["--broker-file", "one line"],
    ),
    "directory": (lambda d: ["--broker-file", str(d)], ["--broker-file", "not a regular file"]),
    "huge-file": (lambda d: ["--broker-file", _huge(d)], ["--broker-file", "65536 bytes"]),
    "both-flags": (
        lambda d: ["--broker", "memory", "--broker-file", _private(d, "memory")],
        ["--broker and --broker-file"],
    ),
    "bad-url-in-file": (
        lambda d: ["--broker-file", _private(d, "redis://h:70000/0")],
        ["--broker-file", "port '70000'"],
    ),
}


def _huge(d: Path) -> str:
    """A 4 GiB file (sparse: it costs no disk) only its owner can read."""
    p = d / "huge"
    with p.open("wb") as fh:
        fh.truncate(4 << 30)
    p.chmod(0o600)
    return str(p)


def _private(d: Path, text: str) -> str:
    p = d / f"url-{uuid.uuid4().hex[:6]}"
    p.write_text(text)
    p.chmod(0o600)
    return str(p)


@pytest.mark.parametrize("case", sorted(BROKER_SOURCES))
def test_a_bad_broker_source_is_one_line(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A broker file that is missing, empty, not one line, a directory, given with
    --broker, or holding a bad URL: exit 2, one line naming --broker-file."""
    monkeypatch.delenv("CCDASH_BROKER", raising=False)
    make, fragments = BROKER_SOURCES[case]
    assert cli.main(["--demo", *make(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert len(err.splitlines()) == 1 and err.startswith("ccdash: error: ") and out == ""
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def test_a_bad_url_in_the_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """$CCDASH_BROKER with a bad URL: the error names $CCDASH_BROKER, not --broker."""
    monkeypatch.setenv("CCDASH_BROKER", f"redis://:{PASSWORD}@127.0.0.1:1/0?bogus=1")
    assert cli.main(["--demo"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ccdash: error: $CCDASH_BROKER: ") and "'bogus'" in err
    assert PASSWORD not in err


def test_the_audit_log_is_created_0600_under_umask_0(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """A worker's --audit-log is owner-only even when the umask would allow more."""
    from ccdash.fleet.listener import ControlListener

    path = tmp_path / "audit.jsonl"

    async def one_record() -> None:
        async def execute(_: object) -> str:
            return "ok"

        listener = ControlListener(
            f"{redis_server.url}?queue=a{uuid.uuid4().hex[:6]}",
            "w1",
            b"secret",
            execute,
            audit_file=path,
        )
        await listener.start()
        try:
            await listener.audit("accepted", {"action": "scale", "args": {"n": 1}}, "ok")
        finally:
            await listener.close()

    old = os.umask(0)
    try:
        asyncio.run(one_record())
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o600
    assert '"action": "scale"' in path.read_text()


@pytest.mark.parametrize("kind", ["fifo", "huge", "directory"])
def test_a_control_secret_file_that_is_no_small_file_is_refused(kind: str, tmp_path: Path) -> None:
    """A control secret file that is a FIFO (reading it waited for a writer for ever), a
    directory or gigabytes (all read into memory) is refused at once, naming the file."""
    from ccdash.fleet.control import ControlError, load_secret

    path = tmp_path / kind
    if kind == "fifo":
        os.mkfifo(path, 0o600)
    elif kind == "huge":
        path = Path(_huge(tmp_path))
    else:
        path.mkdir(mode=0o700)
    with pytest.raises(ControlError, match="control secret file") as caught:
        load_secret(path)
    assert str(path) in str(caught.value)


def test_a_control_secret_that_is_not_utf8_is_its_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """$CCDASH_CONTROL_SECRET holding bytes that are not UTF-8 (`openssl rand 16` pasted
    raw) is those bytes; it raised UnicodeEncodeError ('please report this as a bug')."""
    from ccdash.fleet.control import load_secret

    monkeypatch.delenv("CCDASH_CONTROL_SECRET_FILE", raising=False)
    monkeypatch.setenv("CCDASH_CONTROL_SECRET", os.fsdecode(bytes(range(0xF0, 0x100))))
    assert load_secret() == bytes(range(0xF0, 0x100))


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0?password=s3cr3tPW",
        "redis://127.0.0.1:6379/0?queue=q&pass%77ord=s3cr3tPW",
        "rediss://:s3cr3tPW@127.0.0.1:6379/0?requirepass=s3cr3tPW",
    ],
)
def test_a_password_given_as_a_query_option_is_not_echoed(url: str) -> None:
    """`?password=...` is refused as an unknown option without the refusal showing it."""
    with pytest.raises(BrokerURLError, match="unknown option") as err:
        check_url(url)
    assert "s3cr3tPW" not in str(err.value)
    assert "s3cr3tPW" not in redact_url(url)
    for plain in ("redis://h:1/0?queue=orders&ttl=5", "sqlite:///x.db", "sqlite:////tmp/q.db"):
        assert redact_url(plain) == plain  # nothing to hide: shown as given


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://t0kenXYZ@127.0.0.1:1234/0", "redis://***@127.0.0.1:1234/0"),
        ("rediss://t0kenXYZ@cache.example:6380/2", "rediss://***@cache.example:6380/2"),
        ("redis://t0kenXYZ%40x@[::1]:1234/0?queue=q", "redis://***@[::1]:1234/0?queue=q"),
        ("redis://a@t0kenXYZ@127.0.0.1:1234/0", "redis://***@127.0.0.1:1234/0"),
        ("redis://user:t0kenXYZ@127.0.0.1:1234/0", "redis://user:***@127.0.0.1:1234/0"),
        ("redis://@127.0.0.1:1234/0", "redis://@127.0.0.1:1234/0"),
    ],
)
def test_a_user_part_without_a_password_is_redacted_too(url: str, shown: str) -> None:
    """`redis://TOKEN@host` (no password): the user part is hidden, the host and port kept."""
    assert redact_url(url) == shown
    assert "t0kenXYZ" not in redact_url(url)


def test_a_token_in_the_user_part_is_not_in_the_connection_error(tmp_path: Path) -> None:
    """The one line of an unreachable Redis names the host and port, never the token."""
    from support.redis_fixtures import free_port

    port = free_port()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ccdash",
            "--demo",
            "--broker",
            f"redis://t0kenXYZ@127.0.0.1:{port}/0?timeout=0.5",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"redis://***@127.0.0.1:{port}/0" in proc.stderr, proc.stderr
    assert "t0kenXYZ" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("url", ["sqlite://t0kenXYZ@host/x.db", "sqlite://u:t0kenXYZ@host/x.db"])
def test_a_user_part_in_a_sqlite_url_is_not_echoed(url: str) -> None:
    """A sqlite URL has no user part; the refusal naming the host does not show it."""
    from ccdash.brokers.base import BrokerError

    with pytest.raises(BrokerError, match="names a host") as err:
        check_url(url)
    assert "t0kenXYZ" not in str(err.value)
