"""Scenario files: the shipped ones load, and malformed ones are rejected clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccdash import cli
from ccdash.scenario import (
    DRILL_ACTIONS,
    ScenarioError,
    builtin_names,
    load_scenario,
    parse_scenario,
)
from ccdash.scenario.loader import BUILTIN_DIR
from ccdash.scenario.locate import KeyLocator, dotted

REPO = Path(__file__).resolve().parents[1]
SHIPPED = ("default", "failover-drill", "black-friday", "priority-mix", "batch")


def test_every_required_scenario_ships_in_the_package_and_demo_is_a_view_of_it() -> None:
    """The package holds the five required scenarios; demo/ is a link to that one copy."""
    assert set(SHIPPED) <= set(builtin_names())
    assert (REPO / "demo").resolve() == BUILTIN_DIR.resolve()


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenario_loads(name: str) -> None:
    """Each shipped scenario validates and names itself."""
    sc = load_scenario(REPO / "demo" / f"{name}.toml")
    assert sc.name == name
    assert sc.duration > 0 and sc.seed is not None


def test_none_loads_the_default_scenario_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """load_scenario(None) finds the default demo wherever the process runs."""
    monkeypatch.chdir(tmp_path)
    assert load_scenario(None).name == "default"
    assert load_scenario("failover-drill").name == "failover-drill"  # a bare built-in name


def test_shipped_scenarios_have_the_promised_shapes() -> None:
    """failover has kill, hang and poison; black-friday ramps to 10x; batch uses batches."""
    fo = load_scenario("failover-drill")
    assert {"kill", "hang", "poison"} <= {d.action for d in fo.drills}
    assert any(d.action == "kill" and d.target == "busiest" for d in fo.drills)
    bf = load_scenario("black-friday")
    mid = bf.duration / 2
    assert bf.load.rate_at(mid) == pytest.approx(10 * bf.load.rate_at(0))
    assert bf.load.rate_at(bf.duration) == pytest.approx(bf.load.rate_at(0))
    assert load_scenario("batch").batch
    assert len({m.priority for m in load_scenario("priority-mix").load.mix}) >= 3


def test_black_friday_is_autoscaled_with_prediction_and_cold_starts() -> None:
    """black-friday leaves sizing to the predictive autoscaler; consumers start cold."""
    cfg = load_scenario("black-friday").engine
    assert cfg.autoscale and cfg.predictive and cfg.startup_delay > 0
    assert not [d for d in load_scenario("black-friday").drills if d.action == "scale"]


def test_autoscaler_settings_reach_the_engine_config() -> None:
    """[engine] takes every autoscaler field, typed and range-checked like the others."""
    sc = parse_scenario(
        HEAD + "[engine]\nautoscale = true\npredictive = false\n"
        "scale_interval = 0.5\ntarget_backlog_per_consumer = 20\n"
        "target_utilisation = 0.6\nmax_scale_step = 3\nscale_down_window = 8\n"
        "scale_cooldown = 2\nforecast_horizon = 6\nstartup_delay = 1.5\n"
    )
    cfg = sc.engine
    assert (
        cfg.autoscale,
        cfg.predictive,
        cfg.scale_interval,
        cfg.target_backlog_per_consumer,
        cfg.target_utilisation,
        cfg.max_scale_step,
        cfg.scale_down_window,
        cfg.scale_cooldown,
        cfg.forecast_horizon,
        cfg.startup_delay,
    ) == (True, False, 0.5, 20.0, 0.6, 3, 8.0, 2.0, 6.0, 1.5)


ALERTS = """
[[alerts]]
name = "backlog"
metric = "queue_depth"
op = ">"
threshold = 50
for = 2
severity = "critical"
message = "backlog above 50"

[[alerts]]
name = "dlq-growing"
metric = "dlq_growth"
op = ">"
threshold = 3
"""


def test_alert_rules_add_to_the_built_in_ones_and_replace_by_name() -> None:
    """[[alerts]] rules join the defaults; one named like a default replaces it."""
    rules = {r.name: r for r in parse_scenario(HEAD + ALERTS).engine.rules()}
    backlog = rules["backlog"]
    assert (
        backlog.metric,
        backlog.op,
        backlog.threshold,
        backlog.for_s,
        backlog.severity,
        backlog.message,
    ) == ("queue_depth", ">", 50.0, 2.0, "critical", "backlog above 50")
    assert rules["dlq-growing"].threshold == 3.0 and rules["dlq-growing"].severity == "warning"
    assert {"queue-depth-high", "no-healthy-consumer", "autoscaler-pinned"} <= rules.keys()


def test_the_p99_slo_becomes_the_engines_latency_slo() -> None:
    """[slo] max_latency_p99_ms sets EngineConfig.latency_slo, which adds the p99 rule."""
    cfg = parse_scenario(HEAD + "[slo]\nmax_latency_p99_ms = 250\n").engine
    assert cfg.latency_slo == pytest.approx(0.25)
    p99 = {r.name: r for r in cfg.rules()}["p99-over-slo"]
    assert p99.threshold == pytest.approx(0.25)
    assert parse_scenario(HEAD).engine.latency_slo is None


def test_locator_finds_keys_in_tables_and_arrays_of_tables() -> None:
    """Lines of keys in [tables], [[arrays]] and their sub-tables."""
    text = "[a]\nx = 1\n\n[[d]]\nat = 1\n[[d]]\n# c\nat = 2\n[[d.m]]\nk = 3\n"
    loc = KeyLocator(text)
    assert loc.line_of(("a", "x")) == 2
    assert loc.line_of(("d", 0, "at")) == 5
    assert loc.line_of(("d", 1, "at")) == 8
    assert loc.line_of(("d", 1, "m", 0, "k")) == 10
    assert loc.line_of(("d", 1, "missing")) == 6  # falls back to the table header
    assert dotted(("d", 1, "at")) == "d[2].at"


def test_scenario_error_carries_file_line_and_field() -> None:
    """The error's parts are attributes as well as the one-line message."""
    with pytest.raises(ScenarioError) as info:
        parse_scenario("[scenario]\nduration = 5\n[load]\nrate = -1\n", file="x.toml")
    err = info.value
    assert (err.file, err.line, err.field) == ("x.toml", 4, "load.rate")
    assert str(err).startswith("x.toml:4: load.rate: expected a number >= 0")


def test_rolling_update_drill_is_accepted_once_the_engine_has_it() -> None:
    """rolling-update is a drill action exactly when the engine can do it."""
    from ccdash import Engine

    assert ("rolling-update" in DRILL_ACTIONS) == hasattr(Engine, "rolling_update")


# -- malformed inputs: each exits 2 with one line naming the problem ------------------

HEAD = "[scenario]\nduration = 10\n"
ALERT_HEAD = '[[alerts]]\nname = "deep"\n'
BAD_FILES = {
    "bad-toml": ("[scenario\nduration = 10\n", ["invalid TOML", ":1:"]),
    "unknown-section": (HEAD + "[loadd]\nrate = 1\n", ["[loadd]", "did you mean 'load'"]),
    "unknown-field": (
        "[scenario]\nduraton = 10\n",
        [":2:", "scenario.duraton", "did you mean 'duration'", "valid fields"],
    ),
    "negative-rate": (HEAD + "[load]\nrate = -5\n", [":4:", "load.rate", ">= 0", "-5"]),
    "unknown-balancer": (
        HEAD + '[engine]\nbalancer = "round-robbin"\n',
        [":4:", "engine.balancer", "did you mean 'round-robin'", "p2c-ewma"],
    ),
    "unknown-drill-action": (
        HEAD + '[[drills]]\nat = 2\naction = "kil"\n',
        [":5:", "drills[1].action", "did you mean 'kill'", "hang"],
    ),
    "drill-past-the-end": (
        HEAD + '[[drills]]\nat = 12\naction = "kill"\n',
        [":4:", "drills[1].at", "past the end", "duration 10"],
    ),
    "nan-duration": ("[scenario]\nduration = nan\n", [":2:", "scenario.duration", "finite"]),
    "inf-rate": (HEAD + "[load]\nrate = inf\n", [":4:", "load.rate", "finite"]),
    "heartbeat-not-below-visibility": (
        HEAD + "[engine]\nvisibility_timeout = 2.0\nheartbeat_timeout = 3.0\n",
        [":5:", "engine.heartbeat_timeout", "below visibility_timeout"],
    ),
    "min-above-max": (
        HEAD + "[engine]\nmin_consumers = 10\nmax_consumers = 4\n",
        [":4:", "engine.min_consumers", "above max_consumers"],
    ),
    "unknown-shape": (
        HEAD + '[load]\nshape = "sawtooth"\n',
        ["load.shape", "unknown load shape 'sawtooth'", "steady, ramp, burst, sine"],
    ),
    "unknown-target": (
        HEAD + '[[drills]]\nat = 1\naction = "kill"\ntarget = "busyest"\n',
        [":6:", "did you mean 'busiest'", "consumer id"],
    ),
    "field-of-another-shape": (HEAD + "[load]\npeak = 100\n", ["load.peak", "only shape 'ramp'"]),
    "p99-below-median": (
        HEAD + "[handler]\nmedian_ms = 30\np99_ms = 10\n",
        [":5:", "handler.p99_ms", "not below median_ms"],
    ),
    "error-rate-above-one": (HEAD + "[handler]\nerror_rate = 1.5\n", ["handler.error_rate"]),
    "wrong-type": (
        HEAD + '[engine]\nconsumers = "four"\n',
        [":4:", "engine.consumers", "expected an integer", "a string"],
    ),
    "boolean-for-number": (HEAD + "[load]\nrate = true\n", ["load.rate", "a boolean"]),
    "drills-not-an-array": (HEAD + "[drills]\nat = 1\n", ["drills", "[[drills]]"]),
    "scale-beyond-max": (
        HEAD + '[engine]\nmax_consumers = 8\n[[drills]]\nat = 1\naction = "scale"\nto = 80\n',
        [":8:", "drills[1].to", "max_consumers"],
    ),
    "param-of-another-action": (
        HEAD + '[[drills]]\nat = 1\naction = "kill"\ncount = 3\n',
        ["drills[1].count", "not used here"],
    ),
    "slo-priority-not-in-mix": (
        HEAD + '[slo]\nmax_latency_p99_ms_by_priority = { "7" = 100 }\n',
        ["max_latency_p99_ms_by_priority.7", "priority of load.mix"],
    ),
    "unknown-slo": (
        HEAD + "[slo]\nmax_latency_p98_ms = 5\n",
        ["slo.max_latency_p98_ms", "did you mean 'max_latency_p9"],
    ),
    "bad-slow-consumer-id": (
        HEAD + "[handler]\nslow = { worker2 = 3.0 }\n",
        ["handler.slow.worker2", "consumer id like c2"],
    ),
    "ramp-without-peak": (HEAD + '[load]\nshape = "ramp"\n', ["load", "needs peak"]),
    "autoscaler-bad-utilisation": (
        HEAD + "[engine]\nautoscale = true\ntarget_utilisation = 1.5\n",
        [":5:", "engine.target_utilisation", "within (0, 1]"],
    ),
    "autoscaler-not-a-boolean": (
        HEAD + '[engine]\nautoscale = "yes"\n',
        [":4:", "engine.autoscale", "true or false"],
    ),
    "autoscaler-zero-step": (
        HEAD + "[engine]\nmax_scale_step = 0\n",
        [":4:", "engine.max_scale_step", "at least 1"],
    ),
    "latency-slo-in-engine": (
        HEAD + "[engine]\nlatency_slo = 0.2\n",
        [":4:", "engine.latency_slo", "max_latency_p99_ms in [slo]"],
    ),
    "alert-unknown-metric": (
        HEAD + ALERT_HEAD + 'metric = "queue_dept"\nop = ">"\nthreshold = 5\n',
        [
            ":5:",
            "alerts[1].metric",
            "unknown metric 'queue_dept'",
            "did you mean 'queue_depth'",
            "dlq_growth",
        ],
    ),
    "alert-unknown-op": (
        HEAD + ALERT_HEAD + 'metric = "dead"\nop = "=>"\nthreshold = 5\n',
        [":6:", "alerts[1].op", "unknown comparison '=>'", ">="],
    ),
    "alert-unknown-severity": (
        HEAD + ALERT_HEAD + 'metric = "dead"\nop = ">"\nthreshold = 5\nseverity = "urgent"\n',
        [":8:", "alerts[1].severity", "info, warning, critical"],
    ),
    "alert-negative-for": (
        HEAD + ALERT_HEAD + 'metric = "dead"\nop = ">"\nthreshold = 5\nfor = -2\n',
        [":8:", "alerts[1].for", ">= 0"],
    ),
    "alert-threshold-not-a-number": (
        HEAD + ALERT_HEAD + 'metric = "dead"\nop = ">"\nthreshold = "high"\n',
        [":7:", "alerts[1].threshold", "expected a number"],
    ),
    "alert-missing-threshold": (
        HEAD + ALERT_HEAD + 'metric = "dead"\nop = ">"\n',
        [":3:", "alerts[1]", "needs threshold"],
    ),
    "alert-unknown-field": (
        HEAD + ALERT_HEAD + 'metric = "dead"\nop = ">"\nthreshold = 5\nfour = 3\n',
        [":8:", "alerts[1].four", "did you mean 'for'"],
    ),
    "alert-duplicate-name": (
        HEAD
        + ALERT_HEAD
        + 'metric = "dead"\nop = ">"\nthreshold = 5\n'
        + ALERT_HEAD
        + 'metric = "dead"\nop = ">"\nthreshold = 9\n',
        [":9:", "alerts[2].name", "already named 'deep'"],
    ),
    "alerts-not-an-array": (HEAD + '[alerts]\nname = "deep"\n', ["alerts", "[[alerts]]"]),
    "name-too-long": (
        f'[scenario]\nname = "{"n" * 201}"\n',
        [":2:", "scenario.name", "at most 200 characters", "got 201"],
    ),
    "alert-message-too-long": (
        HEAD
        + ALERT_HEAD
        + f'metric = "dead"\nop = ">"\nthreshold = 5\nmessage = "{"m" * 600_000}"\n',
        [":8:", "alerts[1].message", "at most 1000 characters", "got 600000"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_malformed_scenario_exits_2_with_one_line(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A malformed scenario file: exit 2, one `ccdash: error:` line naming file and field."""
    text, fragments = BAD_FILES[case]
    path = tmp_path / f"{case}.toml"
    path.write_text(text)
    assert cli.main(["--demo", "--scenario", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"ccdash: error: {path}")
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def _write_handlers(tmp_path: Path) -> None:
    (tmp_path / "ccdash_test_handlers.py").write_text(
        "def plain(delivery):\n    return None\n\n"
        "async def good(delivery):\n    return None\n\n"
        "NOT_CALLABLE = 3\n"
    )
    (tmp_path / "ccdash_test_broken.py").write_text("raise RuntimeError('boom at import')\n")


BAD_ARGS = {
    "unknown-handler-module": (
        ["--handler", "ccdash_no_such_module:handle"],
        ["cannot import module 'ccdash_no_such_module'"],
    ),
    "handler-not-async": (
        ["--handler", "ccdash_test_handlers:plain"],
        ["ccdash_test_handlers:plain is not async", "async def"],
    ),
    "handler-missing-function": (
        ["--handler", "ccdash_test_handlers:goood"],
        ["has no 'goood'", "did you mean 'good'"],
    ),
    "handler-not-callable": (
        ["--handler", "ccdash_test_handlers:NOT_CALLABLE"],
        ["NOT_CALLABLE is of type int, not a function"],
    ),
    "handler-module-raises": (
        ["--handler", "ccdash_test_broken:x"],
        ["importing 'ccdash_test_broken' failed", "boom at import"],
    ),
    "handler-bad-format": (["--handler", "just_a_module"], ["expected module:function"]),
    "unknown-flag": (["--frobnicate"], ["unrecognized arguments: --frobnicate"]),
    "negative-duration": (
        ["--duration", "-1"],
        ["--duration", "greater than 0 and at most 86400 seconds"],
    ),
    "infinite-duration": (["--duration", "inf"], ["--duration", "at most 86400 seconds", "'inf'"]),
    "non-integer-seed": (["--seed", "abc"], ["--seed", "integer"]),
    "missing-scenario-file": (["--scenario", "no/such/file.toml"], ["no such file"]),
    "near-builtin-name": (
        ["--scenario", "failover-dril"],
        ["did you mean the built-in scenario 'failover-drill'"],
    ),
    "redis-unreachable": (
        ["--broker", "redis://user:hunter2@127.0.0.1:1/0"],
        ["--broker", "cannot reach Redis", "redis://user:***@127.0.0.1:1/0"],
    ),
    "redis-no-host": (
        ["--broker", "redis://"],
        ["--broker", "needs a host", "redis://127.0.0.1:6379/0"],
    ),
    "sqlite-directory-missing": (
        ["--broker", "sqlite:///no/such/dir/q.db"],
        ["--broker: sqlite broker", "no/such/dir", "does not exist"],
    ),
    "sqlite-bad-durability": (
        ["--broker", "sqlite:///q.db?durability=maybe"],
        ["--broker", "durability must be full, normal or off"],
    ),
    "sqlite-no-path": (["--broker", "sqlite://"], ["--broker", "needs a file path"]),
    "unknown-broker": (["--broker", "kafka://x"], ["unknown broker", "memory"]),
    "json-dir-missing": (["--json", "no/such/dir/out.json"], ["--json", "does not exist"]),
    "metrics-port-not-a-number": (
        ["--metrics-port", "http"],
        ["--metrics-port", "expected a port number"],
    ),
    "metrics-port-out-of-range": (
        ["--metrics-port", "70000"],
        ["--metrics-port", "1 to 65535", "0 for any free port"],
    ),
    "metrics-port-negative": (["--metrics-port", "-1"], ["--metrics-port", "1 to 65535"]),
    "log-file-directory-missing": (
        ["--log-file", "no/such/dir/ops.log"],
        ["--log-file", "no/such/dir", "does not exist"],
    ),
    "log-file-is-a-directory": (["--log-file", "."], ["--log-file", "is a directory"]),
}


@pytest.mark.parametrize("case", sorted(BAD_ARGS))
def test_bad_command_line_exits_2_with_one_line(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad argument or handler: exit 2, one `ccdash: error:` line naming it."""
    _write_handlers(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    args, fragments = BAD_ARGS[case]
    assert cli.main(["--demo", *args]) == 2
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ccdash: error: "), err
    assert "Traceback" not in err and out == ""
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_non_utf8_scenario_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A binary file given as a scenario: exit 2, says it is not UTF-8 text."""
    path = tmp_path / "binary.toml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    assert cli.main(["--demo", "--scenario", str(path)]) == 2
    assert "not UTF-8 text" in capsys.readouterr().err


def test_the_summary_line_counts_drills_in_english() -> None:
    """The run's first line says `1 drill`, `2 drills`, `0 drills`."""
    one = parse_scenario('[[drills]]\nat = 1\naction = "kill"\ntarget = "busiest"\n')
    assert one.summary().endswith("; 1 drill")
    assert load_scenario("default").summary().endswith("; 2 drills")
    assert parse_scenario("").summary().endswith("; 0 drills")


def test_the_drills_inject_at_most_a_million_messages_in_all() -> None:
    """Bursts and poisons are published at once and kept in memory until handled: their
    counts together are capped as each one is (1,000,000). A 17 KB file of 300 bursts of
    a million each grew a run past 22 GB before it was killed (one such burst: 0.87 GB)."""
    burst = '[[drills]]\nat = 1\naction = "burst"\ncount = 400000\n'
    poison = '[[drills]]\nat = 2\naction = "poison"\ncount = 200000\n'
    parse_scenario(HEAD + burst + burst + poison, file="ok.toml")  # exactly the cap
    with pytest.raises(ScenarioError) as info:
        parse_scenario(HEAD + burst + burst + poison + burst, file="x.toml")
    err = info.value
    assert (err.line, err.field) == (18, "drills[4].count")
    assert "1400000 messages" in str(err) and "at most 1000000" in str(err)
