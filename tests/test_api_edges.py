"""The Python API's edges as a user meets them (DESIGN.md, "Contract: Python API")."""

from __future__ import annotations

import pytest

from ccdash import Delivery, Engine, EngineConfig


async def test_redrive_and_purge_refuse_one_string_for_a_list_of_ids() -> None:
    """`redrive(ids="m1")` is a TypeError naming the fix: it was read as the ids 'm', '1'
    and quietly redrove nothing."""

    async def fails(d: Delivery) -> None:
        raise ValueError("no")

    async with Engine(EngineConfig(consumers=1, max_attempts=1), handler=fails) as engine:
        mid = await engine.publish({"x": 1})
        await engine.join(timeout=10)
        with pytest.raises(TypeError, match=r"ids=\['m1'\]"):
            await engine.redrive(ids=mid)
        with pytest.raises(TypeError, match="list of message ids"):
            await engine.purge_dead(ids=mid)
        assert engine.snapshot().queue.dead == 1
        assert await engine.redrive(ids=[mid]) == 1
