"""The Python API's edges as a user meets them (DESIGN.md, "Contract: Python API")."""

from __future__ import annotations

import pytest

from ccdash import Delivery, Engine, EngineConfig
from ccdash.engine import Event


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


async def test_a_listener_that_raises_is_removed_and_the_engine_goes_on() -> None:
    """`add_listener(fn)` with a buggy fn: the engine drops that listener, says so in a
    `listener-failed` event, and keeps handling and failing over; it used to end the run
    (the exception came out of whatever emitted the event)."""
    calls: list[str] = []

    def buggy(ev: Event) -> None:
        calls.append(ev.kind)
        if ev.kind == "consumer-failed":
            raise RuntimeError("listener bug")

    async def ok(d: Delivery) -> None:
        return None

    async with Engine(EngineConfig(consumers=2), handler=ok) as engine:
        engine.add_listener(buggy)
        await engine.kill_consumer("c1")
        for i in range(20):
            await engine.publish(i)
        await engine.join(timeout=10)
        snap = engine.snapshot()
        kinds = [e.kind for e in engine.log.buffer]
    assert snap.acked == 20 and snap.failovers == 1
    assert "listener-failed" in kinds
    assert calls.count("consumer-failed") == 1 and calls[-1] == "consumer-failed"


@pytest.mark.parametrize(
    ("field", "value", "kind"),
    [
        ("consumers", 2.5, "an integer"),
        ("consumers", True, "an integer"),
        ("max_attempts", 1.5, "an integer"),
        ("capacity", "100", "an integer"),
        ("visibility_timeout", "10", "a number"),
        ("handler_timeout", [1], "a number"),
        ("balancer", 3, "a string"),
        ("autoscale", "yes", "true or false"),
        ("seed", 1.0, "an integer"),
    ],
)
def test_a_setting_of_the_wrong_type_is_a_config_error_naming_it(
    field: str, value: object, kind: str
) -> None:
    """EngineConfig(consumers=2.5) was accepted and failed at start (TypeError: 'float'
    object cannot be interpreted as an integer); visibility_timeout="10" raised a
    TypeError from a comparison; max_attempts=1.5 was taken. Each is a ConfigError that
    names the setting and what it takes."""
    from ccdash.engine.config import ConfigError

    with pytest.raises(ConfigError) as info:
        EngineConfig(**{field: value})  # type: ignore[arg-type]
    assert str(info.value).startswith(f"{field} must be {kind}, got "), str(info.value)


def test_a_huge_setting_is_shown_short() -> None:
    """heartbeat_interval=1e300 was shown as its 301 digits."""
    from ccdash.engine.config import ConfigError

    with pytest.raises(ConfigError) as info:
        EngineConfig(heartbeat_interval=1e300)
    assert str(info.value) == "heartbeat_interval must be at most 3600, got 1e+300"
