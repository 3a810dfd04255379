"""Output files in a shared directory: a name another user planted is never written
through, and what ccdash writes is readable by nobody else, not even by someone who
opened the old file while it was readable."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ccdash import cli
from ccdash.files import open_private, open_private_binary, write_private

Plant = Callable[[Path], None]


@pytest.fixture
def planted(monkeypatch: pytest.MonkeyPatch) -> Plant:
    """Makes a path another user's: chown as root; otherwise ccdash is made to run
    as a different uid, so the files of the test's own user are someone else's."""
    if os.geteuid() == 0:
        return lambda p: os.lchown(p, 54321, 54321)
    other = os.geteuid() + 1
    monkeypatch.setattr(os, "geteuid", lambda: other)
    monkeypatch.setattr(os, "getuid", lambda: other)
    return lambda p: None


def test_a_symlink_planted_by_another_user_is_not_written_through(
    tmp_path: Path, planted: Plant
) -> None:
    """/tmp/report.json -> ~/.bashrc, planted by another user: refused, the target intact."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    link = tmp_path / "report.json"
    link.symlink_to(victim)
    planted(link)
    with pytest.raises(OSError, match="symbolic link of another user"):
        write_private(link, "run data\n")
    with pytest.raises(OSError, match="symbolic link of another user"):
        open_private(link, append=True)
    with pytest.raises(OSError, match="symbolic link of another user"):
        open_private_binary(link)
    assert victim.read_text() == "precious\n"
    assert link.is_symlink()


def test_a_file_planted_by_another_user_is_not_written(tmp_path: Path, planted: Plant) -> None:
    """A 0644 file of another user's at the path: they would read the run's data."""
    trap = tmp_path / "run.log"
    trap.write_text("")
    trap.chmod(0o644)
    planted(trap)
    with pytest.raises(OSError, match="belongs to another user"):
        open_private(trap, append=True)
    with pytest.raises(OSError, match="belongs to another user"):
        write_private(trap, "message bodies\n")
    assert trap.read_text() == ""


def test_a_report_over_a_readable_file_of_ours_is_a_fresh_0600_file(tmp_path: Path) -> None:
    """Someone who opened our old 0644 report keeps reading the old text, never the new."""
    path = tmp_path / "report.json"
    path.write_text("old\n")
    path.chmod(0o644)
    with open(path) as reader:
        write_private(path, "secret run data\n")
        assert reader.read() == "old\n"
    assert path.read_text() == "secret run data\n"
    assert path.stat().st_mode & 0o777 == 0o600


def test_appending_to_a_readable_log_of_ours_moves_it_to_a_fresh_0600_file(tmp_path: Path) -> None:
    """The log keeps its old lines, new ones go where an earlier reader cannot follow."""
    path = tmp_path / "run.log"
    path.write_text("line 1\n")
    path.chmod(0o644)
    with open(path) as reader:
        with open_private(path, append=True) as fh:
            fh.write("line 2\n")
        assert reader.read() == "line 1\n"
    assert path.read_text() == "line 1\nline 2\n"
    assert path.stat().st_mode & 0o777 == 0o600
    with open_private(path, append=True) as fh:  # 0600 already: appended in place
        fh.write("line 3\n")
    assert path.read_text() == "line 1\nline 2\nline 3\n"


def test_our_own_symlink_and_dev_null_are_still_written(tmp_path: Path) -> None:
    """A link the user made is followed (its target made 0600); /dev/null takes output."""
    target = tmp_path / "real.json"
    target.write_text("old\n")
    target.chmod(0o644)
    link = tmp_path / "report.json"
    link.symlink_to(target)
    write_private(link, "new\n")
    assert link.is_symlink()
    assert target.read_text() == "new\n"
    assert target.stat().st_mode & 0o777 == 0o600
    write_private(os.devnull, "nothing\n")
    with open_private(os.devnull, append=True) as fh:
        fh.write("nothing\n")


@pytest.mark.parametrize("flag", ["--json", "--log-file", "--record"])
def test_the_cli_refuses_a_planted_output_path_before_the_run(
    flag: str, tmp_path: Path, planted: Plant, capsys: pytest.CaptureFixture[str]
) -> None:
    """One line naming the flag and the path, exit 2, and the link's target untouched."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    link = tmp_path / "out"
    link.symlink_to(victim)
    planted(link)
    code = cli.main(["--demo", "--duration", "1", flag, str(link)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith(f"ccdash: error: {flag}: '{link}' is a symbolic link of another user")
    assert victim.read_text() == "precious\n"


needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root to make a file of another user's"
)


@needs_root
@pytest.mark.parametrize("kind", ["symlink", "file"])
def test_a_sqlite_queue_another_user_planted_in_a_shared_directory_is_refused(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """In a sticky, world-writable directory (/tmp), a q.db planted by another user (a
    link to where they want our messages, or their own 0666 file) is not opened."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    db = shared / "q.db"
    if kind == "symlink":
        db.symlink_to(tmp_path / "their-copy.db")
    else:
        db.write_bytes(b"")
        db.chmod(0o666)
    os.lchown(db, 54321, 54321)
    code = cli.main(["--demo", "--duration", "1", "--broker", f"sqlite:///{db}"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert f"sqlite broker {db}: {db} is a {kind.replace('symlink', 'symbolic link')} of" in err
    assert not (tmp_path / "their-copy.db").exists()
    assert db.is_symlink() or db.read_bytes() == b""


@needs_root
@pytest.mark.parametrize("suffix", ["-wal", "-shm", "-journal"])
def test_a_companion_file_another_user_planted_is_named(
    suffix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """q.db-wal planted as a link next to where our queue will be: refused naming it
    (SQLite said only 'unable to open database file', or replaced the link)."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    db = shared / "q.db"
    planted = shared / f"q.db{suffix}"
    planted.symlink_to(tmp_path / "victim")
    os.lchown(planted, 54321, 54321)
    code = cli.main(["--demo", "--duration", "1", "--broker", f"sqlite:///{db}"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"{planted} is a symbolic link of another user's" in err
    assert planted.is_symlink() and not db.exists()


@needs_root
def test_a_sqlite_queue_of_the_shared_directorys_owner_is_used(tmp_path: Path) -> None:
    """Outside /tmp-like directories, or owned by the directory's owner, a file of another
    user's is a queue shared on purpose: no refusal."""
    from ccdash.files import planted_problem

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    os.chown(shared, 54321, 54321)
    db = shared / "q.db"
    db.write_bytes(b"")
    os.chown(db, 54321, 54321)
    assert planted_problem(db) is None
    shared.chmod(0o775)
    os.chown(db, 4242, 4242)
    assert planted_problem(db) is None


def test_a_hard_link_to_a_file_of_ours_does_not_take_our_lines(tmp_path: Path) -> None:
    """/tmp/run.log planted as a hard link to ~/.ssh/authorized_keys (0600, ours; systems
    without protected_hardlinks allow it): appending leaves the other name's file as it
    was, the log gets a name of its own."""
    keys = tmp_path / "authorized_keys"
    keys.write_text("ssh-ed25519 AAAA me\n")
    keys.chmod(0o600)
    log = tmp_path / "run.log"
    os.link(keys, log)
    with open_private(log, append=True) as fh:
        fh.write('{"kind":"alert"}\n')
    assert keys.read_text() == "ssh-ed25519 AAAA me\n"
    assert log.read_text().endswith('{"kind":"alert"}\n')
    assert log.stat().st_nlink == 1 and log.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("argv", "kept", "says"),
    [
        (
            ["replay", "run.rec", "--report", "--json", "run.rec"],
            "run.rec",
            "the recording and --json",
        ),
        (
            ["replay", "run.rec", "--report", "--json", "x.svg", "--plot", "x.svg"],
            None,
            "--json and --plot",
        ),
        (["--demo", "--scenario", "s.toml", "--json", "s.toml"], "s.toml", "--scenario and --json"),
        (
            ["--demo", "--broker-file", "url", "--log-file", "url"],
            "url",
            "--broker-file and --log-file",
        ),
        (["--demo", "--json", "r.json", "--log-file", "hard"], "r.json", "--json and --log-file"),
        (
            [
                "worker",
                "--broker",
                "redis://127.0.0.1:1/0",
                "--handler",
                "json:dumps",
                "--control-secret-file",
                "secret",
                "--audit-log",
                "secret",
            ],
            "secret",
            "--control-secret-file and --audit-log",
        ),
        (
            [
                "worker",
                "--broker",
                "redis://127.0.0.1:1/0",
                "--handler",
                "json:dumps",
                "--audit-log",
                "a.log",
                "--record",
                "a.log",
            ],
            None,
            "--audit-log and --record",
        ),
        (["bench", "--broker-file", "url", "--json", "url"], "url", "--broker-file and --json"),
        (
            [
                "worker",
                "--broker",
                "redis://127.0.0.1:1/0",
                "--handler",
                "json:dumps",
                "--audit-log",
                "./env-secret",
            ],
            "env-secret",
            "$CCDASH_CONTROL_SECRET_FILE and --audit-log",
        ),
    ],
)
def test_an_output_naming_an_input_or_another_output_is_refused(
    argv: list[str],
    kept: str | None,
    says: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`ccdash replay run.rec --report --json run.rec` wrote the report over the recording
    it read; a worker's audit log could append to its control secret. One line, exit 2,
    the input as it was."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CCDASH_BROKER", raising=False)
    monkeypatch.setenv("CCDASH_CONTROL_SECRET_FILE", "env-secret")
    originals = {
        "env-secret": b"0123456789abcdef0123456789abcdef\n",
        "run.rec": b"\x1f\x8b not really a recording",
        "s.toml": (Path(__file__).parents[1] / "demo" / "default.toml").read_bytes(),
        "url": b"memory\n",
        "secret": b"0123456789abcdef0123456789abcdef\n",
        "r.json": b"{}\n",
    }
    for name, data in originals.items():
        (tmp_path / name).write_bytes(data)
        (tmp_path / name).chmod(0o600)
    os.link(tmp_path / "r.json", tmp_path / "hard")
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err and "same file" in err, err
    if kept is not None:
        assert (tmp_path / kept).read_bytes() == originals[kept]


SHORT_SCENARIO = """
[scenario]
name = "short"
duration = 1
seed = 1
[engine]
consumers = 2
[load]
rate = 20
[handler]
latency = "constant"
ms = 1
"""


@pytest.mark.parametrize("target", ["/dev/stdout", "/proc/self/fd/1", "/dev/fd/1", "out.txt"])
def test_a_report_to_stdout_redirected_to_a_file_keeps_what_was_printed(
    target: str, tmp_path: Path
) -> None:
    """`ccdash --demo --json /dev/stdout > out.txt`: the file holds the text report and
    then the JSON; the report used to truncate the file the shell redirected to, so the
    text printed before it was lost (and the JSON landed at offset 0). Still 0600.
    `--json out.txt > out.txt` likewise (it wrote the JSON to a fresh file put in the
    place of the one the text went to)."""
    import json
    import subprocess
    import sys

    (tmp_path / "s.toml").write_text(SHORT_SCENARIO)
    out = tmp_path / "out.txt"
    with open(out, "w") as fh:
        fh.write("before the run\n")
        fh.flush()
        proc = subprocess.run(
            [sys.executable, "-m", "ccdash", "--demo", "--scenario", "s.toml", "--json", target],
            cwd=tmp_path,
            stdout=fh,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert text.startswith("before the run\n"), text[:200]
    assert "result: PASS" in text, text[:2000]
    assert "\x00" not in text
    report = json.loads(text[text.index("\n{\n") + 1 :])
    assert report["ok"] is True and report["scenario"] == "short"
    assert out.stat().st_mode & 0o777 == 0o600


def test_a_report_to_a_pipe_or_dev_null_is_written(tmp_path: Path) -> None:
    """/dev/stdout a pipe: the JSON follows the text on it; /dev/null takes it."""
    import json
    import subprocess
    import sys

    (tmp_path / "s.toml").write_text(SHORT_SCENARIO)
    proc = subprocess.run(
        [sys.executable, "-m", "ccdash", "--demo", "--scenario", "s.toml", "--json", "/dev/stdout"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "result: PASS" in proc.stdout
    assert json.loads(proc.stdout[proc.stdout.index("\n{\n") + 1 :])["ok"] is True
