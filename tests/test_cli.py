"""The `ccdash` command: the installed console script, exit codes, signals, routing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest

from ccdash import __version__, cli
from ccdash.scenario import REPORT_FIELDS

BIN = Path(sys.executable).parent
CCDASH = str(BIN / "ccdash")

SHORT = """
[scenario]
name = "short"
duration = 1
seed = 1
[engine]
consumers = 2
heartbeat_interval = 0.2
heartbeat_timeout = 0.8
[load]
rate = 40
[handler]
latency = "constant"
ms = 5
"""


def test_console_script_is_installed() -> None:
    """`ccdash` is on the venv's bin path (pip install -e .)."""
    assert Path(CCDASH).exists()


def test_demo_through_the_console_script_writes_a_complete_report(tmp_path: Path) -> None:
    """`ccdash --demo --duration 5 --json out.json`: exit 0, lost 0, every field present."""
    proc = subprocess.run(
        [CCDASH, "--demo", "--duration", "5", "--json", "out.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "out.json").read_text())
    assert set(REPORT_FIELDS) <= set(report)
    assert report["lost"] == 0 and report["ok"] is True
    assert report["scenario"] == "default" and report["duration_s"] >= 5
    assert set(report["latency_ms"]) == {"p50", "p95", "p99"}
    assert "result: PASS" in proc.stdout and proc.stderr == ""


@pytest.mark.parametrize(
    ("sig", "code"),
    [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
    ids=["SIGINT", "SIGTERM", "SIGHUP"],
)
def test_signal_stops_the_run_gracefully(tmp_path: Path, sig: signal.Signals, code: int) -> None:
    """SIGINT/SIGTERM/SIGHUP (the ssh session closed) mid-run: the report still comes out,
    marked interrupted, nothing lost."""
    proc = subprocess.Popen(
        [CCDASH, "--demo", "--duration", "30", "--json", "out.json"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        while "running: published" not in proc.stdout.readline():  # the run is under way
            assert proc.poll() is None
        time.sleep(1.0)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, out + err
    assert f"{sig.name}: stopping gracefully" in out
    assert f"result: INTERRUPTED by {sig.name}; lost 0" in out
    report = json.loads((tmp_path / "out.json").read_text())
    assert report["interrupted"] is True and report["stopped_by"] == sig.name
    assert report["lost"] == 0 and report["published"] > 0
    assert report["published"] == report["acked"] + report["dead_lettered"] + report["still_queued"]
    assert "Traceback" not in err


def test_usage_errors_through_the_console_script_have_no_traceback(tmp_path: Path) -> None:
    """Bad TOML and a sync handler, via the real command: one line each, exit 2."""
    (tmp_path / "bad.toml").write_text("[scenario\n")
    (tmp_path / "sync_handler.py").write_text("def handle(d):\n    pass\n")
    for args in (["--scenario", "bad.toml"], ["--handler", "sync_handler:handle"]):
        proc = subprocess.run(
            [CCDASH, "--demo", *args], cwd=tmp_path, capture_output=True, text=True, timeout=30
        )
        assert proc.returncode == 2
        assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith("ccdash: error: ")
        assert proc.stdout == ""


def test_demo_on_a_sqlite_broker_through_the_console_script(tmp_path: Path) -> None:
    """`ccdash --demo --broker sqlite:///tmp/x.db`: exit 0, lost 0, the file is owner-only."""
    (tmp_path / "tmp").mkdir()
    proc = subprocess.run(
        [
            CCDASH,
            "--demo",
            "--broker",
            "sqlite:///tmp/x.db",
            "--duration",
            "3",
            "--json",
            "out.json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "out.json").read_text())
    assert report["lost"] == 0 and report["ok"] is True and report["published"] > 0
    assert "broker: sqlite:///tmp/x.db" in proc.stdout and proc.stderr == ""
    assert (tmp_path / "tmp" / "x.db").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("url", "says"),
    [("sqlite:///no/such/dir/x.db", "directory"), ("sqlite://somehost/x.db", "names a host")],
    ids=["missing-directory", "host-in-url"],
)
def test_a_bad_sqlite_broker_is_one_line_exit_2(tmp_path: Path, url: str, says: str) -> None:
    """A sqlite URL that cannot be used: `ccdash: error: --broker: ...`, exit 2, nothing run."""
    proc = subprocess.run(
        [CCDASH, "--demo", "--broker", url, "--duration", "3"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert len(proc.stderr.splitlines()) == 1
    assert proc.stderr.startswith("ccdash: error: --broker: ") and says in proc.stderr
    assert proc.stdout == "" and not list(tmp_path.iterdir())


def test_impossible_slo_exits_1_and_says_which(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A scenario whose SLO cannot hold: exit 1, the report names the failed SLO."""
    path = tmp_path / "impossible.toml"
    path.write_text(SHORT + "[slo]\nmax_latency_p50_ms = 0.001\n")
    assert cli.main(["--demo", "--scenario", str(path), "--json", str(tmp_path / "r.json")]) == 1
    out = capsys.readouterr().out
    assert "result: FAIL (max_latency_p50_ms failed)" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert [c["name"] for c in report["slo"] if not c["ok"]] == ["max_latency_p50_ms"]
    assert report["lost"] == 0


def test_handler_option_runs_the_users_async_handler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--handler module:func replaces the simulated handler; the loss check still applies."""
    (tmp_path / "scenario.toml").write_text(SHORT)
    (tmp_path / "ccdash_user_jobs.py").write_text(
        "SEEN = []\n\nasync def handle(delivery):\n    SEEN.append(delivery.message_id)\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    code = cli.main(
        [
            "--demo",
            "--scenario",
            "scenario.toml",
            "--handler",
            "ccdash_user_jobs:handle",
            "--json",
            "r.json",
        ]
    )
    assert code == 0, capsys.readouterr()
    report = json.loads((tmp_path / "r.json").read_text())
    seen = sys.modules["ccdash_user_jobs"].SEEN
    assert report["acked"] == report["published"] == len(set(seen)) > 10
    assert report["lost"] == 0


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the version; --help lists the modes and the built-in scenarios."""
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"ccdash {__version__}"
    assert cli.main(["--help"]) == 0
    text = capsys.readouterr().out
    for word in ("--demo", "--scenario", "--handler", "ccdash bench", "failover-drill"):
        assert word in text


def test_python_dash_m_runs_the_same_command() -> None:
    """`python -m ccdash --version` works like the console script."""
    proc = subprocess.run(
        [sys.executable, "-m", "ccdash", "--version"], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0 and proc.stdout.strip() == f"ccdash {__version__}"


class _Pipe:
    def isatty(self) -> bool:
        return False


def test_dashboard_without_a_terminal_exits_2_suggesting_demo(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ccdash` with no TTY: one line saying so, pointing at --demo."""
    monkeypatch.setattr(sys, "stdin", _Pipe())
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ccdash: error: the dashboard needs a terminal")
    assert "--demo" in err and len(err.splitlines()) == 1


class _TTY:
    def isatty(self) -> bool:
        return True


def test_dashboard_is_launched_with_the_scenario_and_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a terminal, `ccdash --scenario F --seed N` calls run_tui with them."""
    calls: list[dict[str, Any]] = []
    fake = types.ModuleType("ccdash.tui.launch")

    def run_tui(**kw: Any) -> int:
        calls.append(kw)
        return 0

    fake.run_tui = run_tui  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ccdash.tui.launch", fake)
    monkeypatch.setattr(sys, "stdin", _TTY())
    monkeypatch.setattr(sys, "stdout", _TTY())
    assert cli.main(["--scenario", "failover-drill", "--seed", "5"]) == 0
    [kw] = calls
    assert kw["scenario"].name == "failover-drill"
    assert (kw["seed"], kw["handler"], kw["theme"]) == (5, None, None)


def _fake_tui(monkeypatch: pytest.MonkeyPatch, run_tui: Any) -> None:
    fake = types.ModuleType("ccdash.tui.launch")
    fake.run_tui = run_tui  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ccdash.tui.launch", fake)
    monkeypatch.setattr(sys, "stdin", _TTY())
    monkeypatch.setattr(sys, "stdout", _TTY())


def test_ops_options_reach_a_dashboard_that_takes_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """--metrics-port and --log-file are passed to run_tui when its signature has them."""
    calls: list[dict[str, Any]] = []

    def run_tui(
        scenario: Any = None,
        handler: Any = None,
        theme: str | None = None,
        seed: int | None = None,
        metrics_port: int | None = None,
        log_file: str | None = None,
    ) -> int:
        calls.append({"metrics_port": metrics_port, "log_file": log_file})
        return 0

    _fake_tui(monkeypatch, run_tui)
    assert cli.main(["--metrics-port", "0", "--log-file", "ops.log"]) == 0
    assert cli.main([]) == 0
    assert calls == [
        {"metrics_port": 0, "log_file": "ops.log"},
        {"metrics_port": None, "log_file": None},
    ]


def test_ops_options_the_dashboard_lacks_are_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run_tui without metrics_port: `--metrics-port` says so (exit 2), never ignored."""
    calls: list[int] = []

    def run_tui(
        scenario: Any = None, handler: Any = None, theme: str | None = None, seed: int | None = None
    ) -> int:
        calls.append(1)
        return 0

    _fake_tui(monkeypatch, run_tui)
    assert cli.main(["--metrics-port", "9100"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ccdash: error: --metrics-port: the dashboard does not support it")
    assert "--demo" in err and len(err.splitlines()) == 1 and not calls


def test_dashboard_gets_the_sqlite_broker_and_its_open_errors_are_usage_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--broker sqlite:///F reaches run_tui; a BrokerError from it is one line, exit 2."""
    from ccdash.brokers.base import BrokerError

    calls: list[dict[str, Any]] = []

    def run_tui(
        scenario: Any = None,
        handler: Any = None,
        theme: str | None = None,
        seed: int | None = None,
        *,
        broker: str | None = None,
    ) -> int:
        calls.append({"broker": broker})
        if broker and "locked" in broker:
            raise BrokerError("sqlite broker locked.db: file is read-only (need read and write)")
        return 0

    _fake_tui(monkeypatch, run_tui)
    assert cli.main(["--broker", "sqlite:///q.db"]) == 0
    assert cli.main([]) == 0
    assert calls == [{"broker": "sqlite:///q.db"}, {"broker": None}]
    capsys.readouterr()
    assert cli.main(["--broker", "sqlite:///locked.db"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "ccdash: error: --broker: sqlite broker locked.db: file is read-only "
        "(need read and write)\n"
    )


def test_read_only_with_demo_is_refused_not_ignored(capsys: pytest.CaptureFixture[str]) -> None:
    """--read-only names the dashboard's mode: with --demo it is one line, exit 2."""
    assert cli.main(["--demo", "--read-only"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ccdash: error: --read-only applies to the dashboard")
    assert err.count("\n") == 1


def test_flags_of_headless_runs_need_demo(capsys: pytest.CaptureFixture[str]) -> None:
    """--json without --demo is a usage error, not silently ignored."""
    assert cli.main(["--json", "x.json"]) == 2
    assert "add --demo" in capsys.readouterr().err


def test_bench_subcommand_is_routed_with_one_line_errors(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`ccdash bench` goes to ccdash.bench; its usage errors are one line, exit 2."""
    assert cli.main(["bench", "--frobnicate"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ccdash: error: unrecognized arguments: --frobnicate")
    assert len(err.splitlines()) == 1
    assert cli.main(["bench", "--messages", "200", "--rounds", "1", "--prefetch", "1"]) == 0
    assert capsys.readouterr().out
