"""`--handler ccdash.demo:handle`: the demo's simulated handler for a worker of your own."""

from __future__ import annotations

from ccdash import Engine, EngineConfig
from ccdash.cli import load_handler


async def test_the_builtin_demo_handler_loads_and_runs_the_demo_workload() -> None:
    """ccdash.demo:handle loads as a --handler; on an engine it handles ordinary messages
    (transient failures retried) and sends a poison message to the DLQ."""
    handler = load_handler("ccdash.demo:handle")
    cfg = EngineConfig(consumers=4, max_attempts=5, backoff_base=0.01, backoff_max=0.05, seed=1)
    async with Engine(cfg, handler=handler) as engine:
        for i in range(20):
            await engine.publish({"order": i})
        poison = await engine.publish({"poison": True})
        await engine.join(timeout=20.0)
        snap = engine.snapshot()
    assert snap.acked == 20 and snap.queue.dead == 1
    assert [d.message_id for d in snap.dead_letters] == [poison]
    assert "always fails" in snap.dead_letters[0].last_error


def test_the_fast_variant_loads_too() -> None:
    """ccdash.demo:handle_fast is an async handler as --handler wants."""
    assert load_handler("ccdash.demo:handle_fast").__name__ == "handle_fast"
