"""Secrets given in the environment ($CCDASH_CONTROL_SECRET, a $CCDASH_BROKER URL with
a password) are read at start and taken out of it: a process a handler starts does not
inherit them, /proc/PID/environ no longer shows them; the run still uses them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from support.polling import wait_until
from support.redis_fixtures import RedisServer

from ccdash.brokers.base import QueueConfig
from ccdash.brokers.redis import RedisBroker
from ccdash.fleet import load_secret, send_command
from ccdash.validate import resolve_broker, secrets_kept_in_memory

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "pw-" + uuid.uuid4().hex
SECRET = "control-" + uuid.uuid4().hex


@pytest.fixture
def locked_redis(redis_server_factory: Callable[[], RedisServer]) -> RedisServer:
    """A private redis-server that requires PASSWORD."""
    server = redis_server_factory()
    assert server.command("CONFIG", "SET", "requirepass", PASSWORD).startswith(b"+OK")
    return server


def _start(argv: list[str], url: str, out: Path) -> subprocess.Popen[bytes]:
    """`python -m ccdash *argv` with the URL and the control secret in its environment,
    its handler support.fleet_handlers:env_probe writing under `out`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCDASH_")}
    env.update(
        CCDASH_BROKER=url,
        CCDASH_CONTROL_SECRET=SECRET,
        CCDASH_TEST_OUT=str(out),
        CCDASH_TEST_DELAY="0",
        PYTHONPATH=os.pathsep.join(
            filter(None, [str(ROOT / "tests"), str(ROOT), os.environ.get("PYTHONPATH")])
        ),
    )
    argv = [sys.executable, "-m", "ccdash", *argv]
    argv += ["--handler", "support.fleet_handlers:env_probe"]
    with (out / "ccdash.log").open("wb") as log:
        return subprocess.Popen(argv, env=env, stdout=log, stderr=log, cwd=ROOT)


def _no_secret_reaches_a_child(proc: subprocess.Popen[bytes], out: Path) -> None:
    """What the handler's child inherited and what /proc/PID/environ shows: neither secret."""

    def running() -> None:
        assert proc.poll() is None, (out / "ccdash.log").read_text()

    probe = out / f"env-{proc.pid}"
    wait_until(probe.exists, 60, "the handler's probe", guard=running)
    wait_until(lambda: b"\n" in probe.read_bytes(), 10, "the probe written")
    inherited = probe.read_bytes()
    shown = Path(f"/proc/{proc.pid}/environ").read_bytes()
    # (booleans only: a failure must not print the whole environment)
    works = b"CCDASH_TEST_OUT=" in inherited and b"CCDASH_TEST_OUT=" in shown
    assert works, "the probe sees the other variables"
    for name, value in (("password", PASSWORD), ("control secret", SECRET)):
        inherits, shows = value.encode() in inherited, value.encode() in shown
        assert not inherits, f"a handler's child inherits the {name}"
        assert not shows, f"/proc/PID/environ shows the {name}"


def test_a_workers_handler_cannot_pass_its_secrets_on(
    locked_redis: RedisServer, tmp_path: Path
) -> None:
    """`ccdash worker` given the broker password and the control secret in its
    environment: a process its handler starts inherits neither, /proc/PID/environ shows
    neither; the worker still connects with the password and obeys a signed command."""
    url = f"redis://:{PASSWORD}@127.0.0.1:{locked_redis.port}/0?queue=e{uuid.uuid4().hex[:6]}"
    proc = _start(["worker", "--name", "e1"], url, tmp_path)
    try:
        wait_until(
            lambda: b"consumers on" in (tmp_path / "ccdash.log").read_bytes(), 30, "the start"
        )

        async def publish_and_command() -> str:
            broker = RedisBroker.from_url(url, QueueConfig(), worker="publisher")
            await broker.open()
            try:
                await broker.publish({"n": 1})
            finally:
                await broker.close()
            res = await send_command(url, SECRET, "e1", "scale", n=2, wait=30)
            return f"{res.status}: {res.detail}"

        assert asyncio.run(publish_and_command()) == "accepted: concurrency 2"
        _no_secret_reaches_a_child(proc, tmp_path)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, (tmp_path / "ccdash.log").read_text()


def test_a_demo_handler_cannot_pass_the_secrets_on(
    locked_redis: RedisServer, tmp_path: Path
) -> None:
    """`ccdash --demo --handler` on a Redis URL with a password from $CCDASH_BROKER and
    with $CCDASH_CONTROL_SECRET set: the handler's children and /proc/PID/environ get
    neither; the run uses the URL (it reaches its report)."""
    url = f"redis://:{PASSWORD}@127.0.0.1:{locked_redis.port}/0?queue=d{uuid.uuid4().hex[:6]}"
    proc = _start(["--demo", "--duration", "60"], url, tmp_path)
    try:
        _no_secret_reaches_a_child(proc, tmp_path)
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    log = (tmp_path / "ccdash.log").read_text()
    assert code == 130 and "ccdash demo report" in log, log
    assert PASSWORD not in log and SECRET not in log


def test_the_secrets_are_back_in_os_environ_after_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In-process (a test, an embedding program): during the run the secrets are read
    from memory; after it os.environ has them again. A broker URL without a secret is
    no secret: it stays for the children (a publisher the handler runs)."""
    monkeypatch.setenv("CCDASH_CONTROL_SECRET", SECRET)
    monkeypatch.setenv("CCDASH_BROKER", f"redis://:{PASSWORD}@127.0.0.1:1/0")
    with secrets_kept_in_memory():
        assert "CCDASH_CONTROL_SECRET" not in os.environ and "CCDASH_BROKER" not in os.environ
        assert load_secret() == SECRET.encode()
        assert resolve_broker(None, None)[0] == f"redis://:{PASSWORD}@127.0.0.1:1/0"
    assert os.environ["CCDASH_CONTROL_SECRET"] == SECRET
    assert os.environ["CCDASH_BROKER"] == f"redis://:{PASSWORD}@127.0.0.1:1/0"
    monkeypatch.setenv("CCDASH_BROKER", "redis://127.0.0.1:1/0")
    with secrets_kept_in_memory():
        assert os.environ["CCDASH_BROKER"] == "redis://127.0.0.1:1/0"


def test_ccdash_runs_on_a_python_without_ctypes() -> None:
    """Blanking the startup block is best effort: a Python built without _ctypes still
    starts ccdash and takes the secret out of os.environ."""
    code = (
        "import sys; sys.modules['ctypes'] = sys.modules['_ctypes'] = None\n"
        "import os, ccdash.cli, ccdash.worker\n"
        "from ccdash.secret_env import env_value, taken_from_environ\n"
        "with taken_from_environ(['CCDASH_CONTROL_SECRET']):\n"
        "    assert 'CCDASH_CONTROL_SECRET' not in os.environ\n"
        "    assert env_value('CCDASH_CONTROL_SECRET') == 's3cret-value-0123456789'\n"
        "print('ok')\n"
    )
    env = {**os.environ, "CCDASH_CONTROL_SECRET": "s3cret-value-0123456789"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and out.stdout == "ok\n", out.stderr
