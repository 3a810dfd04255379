"""The headless report when Redis loses the queue mid-run (a restart without
persistence, a FLUSHALL): the messages that vanished unhandled are lost, and the
report never also counts them acked ("by other workers") - its figures add up."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
from support.redis_fixtures import RedisServer

from ccdash import cli

SCENARIO = """
[scenario]
name = "loss"
duration = 2
drain_timeout = 10

[engine]
consumers = 3
visibility_timeout = 5.0
heartbeat_interval = 0.5
heartbeat_timeout = 1.5

[load]
shape = "steady"
rate = 60

[handler]
latency = "constant"
ms = 100
"""


def test_messages_redis_lost_are_counted_lost_not_acked_elsewhere(
    tmp_path: Path, redis_url: str, redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every key of the queue is deleted mid-run with a backlog in it: the report says
    lost > 0 and FAIL (exit 1), acked_elsewhere 0 (no other worker ran), and
    published = acked + dead-lettered + still queued + lost."""
    scenario = tmp_path / "loss.toml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "report.json"
    prefix = f"ccdash:{{{parse_qs(urlsplit(redis_url).query)['queue'][0]}}}:"
    client = redis.Redis(port=redis_server.port, socket_timeout=5)
    wiped, over = threading.Event(), threading.Event()

    def wipe_when_backlogged() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not over.is_set():
            if client.exists(prefix + "q:0") and client.xlen(prefix + "q:0") >= 30:
                keys = list(client.scan_iter(match=prefix + "*"))
                client.delete(*keys)
                wiped.set()
                return
            time.sleep(0.02)

    wiper = threading.Thread(target=wipe_when_backlogged, daemon=True)
    wiper.start()
    try:
        code = cli.main(
            ["--demo", "--scenario", str(scenario), "--broker", redis_url, "--json", str(out)]
        )
    finally:
        over.set()
        wiper.join(25)
        client.close()
    text = capsys.readouterr().out
    assert wiped.is_set(), "the queue was wiped mid-run"
    r = json.loads(out.read_text())
    assert r["lost"] > 0 and not r["ok"] and code == 1, text[-2500:]
    assert r["acked_elsewhere"] == 0, text[-2500:]
    assert r["acked"] + r["dead_lettered"] + r["still_queued"] + r["lost"] == r["published"], r
    assert "acked by other workers" not in text, text[-2500:]


async def test_a_publisher_notices_redis_came_back_without_the_queue(
    redis_url: str, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis loses the queue's keys and drops the connection (a restart without
    persistence) under a process that only publishes: its next publish re-creates
    the level silently, so no read ever hits NOGROUP; the reconnect's check of the
    queue's marker key says so (an error naming the loss) all the same."""
    from support.polling import until

    from ccdash.brokers.base import QueueConfig
    from ccdash.brokers.redis import RedisBroker

    broker = RedisBroker.from_url(f"{redis_url}&ttl=0.6&worker=p", QueueConfig())
    await broker.open()
    try:
        for n in range(3):
            await broker.publish({"n": n})
        prefix = broker.keys.prefix
        client = redis.Redis(port=redis_server.port, socket_timeout=5)
        try:
            client.delete(*client.scan_iter(match=prefix + "*"))
            for link in (broker.link, broker.reader.link):
                if link.client_id is not None:
                    client.client_kill_filter(_id=str(link.client_id))
        finally:
            client.close()
        await broker.publish({"n": 3})  # reconnects; re-creates the level
        await until(lambda: broker.lost_state_events >= 1, 5, "the loss noticed")
        assert "Redis lost the queue" in caplog.text
    finally:
        await broker.close()
