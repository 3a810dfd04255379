"""Write docs/reference.md from the code that defines what it lists, so it cannot drift.

    python docs/gen_reference.py          # rewrite docs/reference.md
    python docs/gen_reference.py --check  # exit 1 if docs/reference.md is stale

Keys come from the dashboard's key table, metrics from a scrape of a real
engine's collector, alert metrics and rules from the rule module, event kinds (and their
log levels) from the engine's and the drills' vocabularies, scenario fields from the
scenario schema.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

OUT = Path(__file__).resolve().parent / "reference.md"


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return out + [""]


def _keys() -> list[str]:
    from ccdash.tui.keys import KEYS, key_label

    rows = [(f"`{key_label(k)}`", k.title, k.help, "yes" if k.footer else "") for k in KEYS]
    return [
        "## Dashboard keys",
        "",
        "Every key is also a command in the palette (`ctrl+p`), under its title.",
        "",
        *_table(("key", "palette title", "what it does", "footer"), rows),
    ]


async def _metric_families() -> list[tuple[str, str, str]]:
    from ccdash import Engine, EngineConfig
    from ccdash.ops.prometheus import EngineCollector

    async def handler(_: object) -> None:
        return None

    def labelled(name: str, samples: Iterable[object]) -> str:
        labels = sorted({k for s in samples for k in getattr(s, "labels", {}) if k != "le"})
        return f"{name}{{{','.join(labels)}}}" if labels else name

    async with Engine(EngineConfig(consumers=1, max_consumers=2), handler=handler) as engine:
        await engine.scale_to(2)  # so the scaling counter has its labelled sample
        return [
            (labelled(m.name, m.samples), m.type, m.documentation)
            for m in EngineCollector(engine).collect()
        ]


def _metrics() -> list[str]:
    rows = [(f"`{name}`", kind, doc) for name, kind, doc in asyncio.run(_metric_families())]
    return [
        "## Prometheus metrics (`--metrics-port N`)",
        "",
        "Counters carry the `_total` suffix in the exposition.",
        "",
        *_table(("metric", "type", "meaning"), rows),
    ]


def _alerts() -> list[str]:
    from ccdash.engine.rules import COMPARISONS, METRICS, SEVERITIES, default_rules

    rules = default_rules(latency_slo=1.0)
    return [
        "## Alert rules",
        "",
        "A rule in a scenario's `[[alerts]]` names one of these metrics, a comparison "
        f"({', '.join(f'`{c}`' for c in COMPARISONS)}), a threshold, a `for` duration "
        f"and a severity ({', '.join(f'`{s}`' for s in SEVERITIES)}).",
        "",
        *_table(("metric", "meaning"), ((f"`{k}`", v) for k, v in METRICS.items())),
        "Built-in rules (the p99 rule only when the scenario sets a latency SLO; shown "
        "here for an SLO of 1 s):",
        "",
        *_table(
            ("rule", "condition", "for", "severity"),
            (
                (
                    f"`{r.name}`",
                    f"`{r.metric} {r.op} {r.threshold:g}`",
                    f"{r.for_s:g} s",
                    r.severity,
                )
                for r in rules
            ),
        ),
    ]


def _events() -> list[str]:
    from ccdash.engine import DrillEvent, EventKind
    from ccdash.scenario.run_events import RunEvent

    rows = [(f"`{k}`", k.level, k.doc) for k in [*EventKind, *DrillEvent]]
    run_rows = [(f"`{k}`", k.level, k.doc) for k in RunEvent]
    return [
        "## Event kinds",
        "",
        "What `--log-file` writes (one JSON line each, at this level), the dashboard's "
        "log shows and a recording keeps.",
        "",
        *_table(("event", "level", "what happened"), rows),
        "A scenario run also reports its phases; the dashboard's log shows them and a "
        "recording keeps them (`--log-file` holds the engine's events only).",
        "",
        *_table(("event", "level", "what happened"), run_rows),
    ]


def _scenario() -> list[str]:
    from ccdash.engine.config import EngineConfig
    from ccdash.scenario import model, schema

    def names(keys: Iterable[str]) -> str:
        return ", ".join(f"`{k}`" for k in keys) or "—"

    engine_defaults = {f.name: f.default for f in dataclasses.fields(EngineConfig)}
    out = [
        "## Scenario fields",
        "",
        f"Sections: {names(schema.SECTIONS)}. Unknown keys are rejected with the "
        "file, line and field named.",
        "",
        *_table(
            ("section", "keys"),
            (
                ("`[scenario]`", names(schema.SCENARIO_KEYS)),
                ("`[load]`", names(schema.LOAD_COMMON)),
                ("`[[load.mix]]`", names(schema.MIX_KEYS)),
                ("`[handler]`", names(schema.HANDLER_COMMON)),
                ("`[[drills]]`", names(schema.DRILL_COMMON)),
                ("`[[alerts]]`", names(schema.ALERT_KEYS)),
                ("`[slo]`", names(schema.SLO_KEYS)),
            ),
        ),
    ]
    out += [
        "Keys by load shape (`[load] shape`):",
        "",
        *_table(
            ("shape", "keys"), ((f"`{s}`", names(schema.LOAD_BY_SHAPE[s])) for s in model.SHAPES)
        ),
    ]
    out += [
        "Keys by latency distribution (`[handler] latency`):",
        "",
        *_table(
            ("latency", "keys"),
            ((f"`{k}`", names(v)) for k, v in schema.HANDLER_BY_LATENCY.items()),
        ),
    ]
    out += [
        "Keys by drill action (`[[drills]] action`); a `target` is one of "
        f"{names(model.TARGETS)} or a consumer id:",
        "",
        *_table(
            ("action", "keys"), ((f"`{k}`", names(v)) for k, v in schema.DRILL_BY_ACTION.items())
        ),
    ]
    out += [
        "`[engine]` keys and their defaults:",
        "",
        *_table(
            ("key", "default"),
            ((f"`{k}`", f"`{engine_defaults.get(k)!r}`") for k in schema.ENGINE_KEYS),
        ),
    ]
    return out


def render() -> str:
    """The whole reference page."""
    parts = [
        "# Reference",
        "",
        "Generated by `python docs/gen_reference.py` from the code; a test fails "
        "when this page and the code disagree.",
        "",
    ]
    for section in (_keys, _metrics, _alerts, _events, _scenario):
        parts += section()
    return "\n".join(parts).rstrip() + "\n"


def main(argv: list[str]) -> int:
    """Write the page, or with --check say whether it is current."""
    text = render()
    if "--check" in argv:
        if OUT.read_text(encoding="utf-8") != text:
            print("docs/reference.md is stale: run python docs/gen_reference.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
