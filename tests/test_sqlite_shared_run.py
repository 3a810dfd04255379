"""Two headless runs on one SQLite file: each handles some of the other's messages,
and neither calls them lost (the loss checker and the drills ask the file)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from ccdash.headless.run import run_demo
from ccdash.headless.views import PlainView
from ccdash.scenario import parse_scenario

SHARED = """
[scenario]
name = "shared"
duration = 3
seed = 3
drain_timeout = 10
[engine]
consumers = 3
heartbeat_interval = 0.25
heartbeat_timeout = 0.75
visibility_timeout = 10
[load]
rate = 60
[handler]
latency = "constant"
ms = 20
[[drills]]
at = 1
action = "kill"
target = "busiest"
"""


async def test_two_runs_on_one_sqlite_file_lose_nothing_and_pass(tmp_path: Path) -> None:
    """Both runs: lost 0 and ok; the messages the other process acked are counted
    as acked elsewhere, and each kill drill's messages count wherever they were handled."""
    url = f"sqlite:///{tmp_path}/shared.db"
    outs = [io.StringIO(), io.StringIO()]
    reports = await asyncio.gather(
        *(
            run_demo(parse_scenario(SHARED), PlainView(out), broker=url, seed=seed)
            for out, seed in zip(outs, (1, 2), strict=True)
        )
    )
    for report, out in zip(reports, outs, strict=True):
        assert report["lost"] == 0, out.getvalue()
        assert report["published"] == report["acked"] + report["dead_lettered"]
        assert report["ok"] is True, [c for c in report["slo"] if not c["ok"]]
    assert sum(r["acked_elsewhere"] for r in reports) > 0  # they did share the work
