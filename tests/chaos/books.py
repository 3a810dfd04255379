"""The chaos suite's accounting: the independent ledger the handlers write, the
publishers' records, the books that must balance, and the measured table."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chaos.procs import Procs


@dataclass(frozen=True, slots=True)
class Completion:
    """One ledger line: a handler completed this delivery."""

    mid: str
    attempt: int
    n: int | None
    pid: int


def read_ledger(path: Path) -> list[Completion]:
    """Every complete line of the ledger (a torn last line does not count)."""
    if not path.exists():
        return []
    return [Completion(*json.loads(line)) for line in path.read_text().split("\n")[:-1]]


def read_ids(path: Path) -> list[str]:
    """Ids a publisher recorded (complete `id n` lines)."""
    return list(read_numbers(path))


def read_numbers(path: Path) -> dict[str, int]:
    """Id -> body number, as a publisher recorded them."""
    if not path.exists():
        return {}
    pairs = (line.split() for line in path.read_text().split("\n")[:-1] if line)
    return {mid: int(n) for mid, n in pairs}


@dataclass
class Books:
    """Published (by the publisher's own record), completed (the ledger), dead and
    still queued (from the broker): the four must account for every message."""

    published: set[str]
    completions: Counter[str]
    dead: dict[str, str]
    queued: set[str]
    guilty: set[str] = field(default_factory=set)  # may die (poison, injected)
    expected: int | None = None  # the broker's count of accepted publishes, when the
    # publisher kept no record of its own (a demo run)

    @classmethod
    def of(
        cls,
        published: Iterable[str],
        ledger: Path,
        dead: dict[str, str],
        queued: set[str],
        guilty: Iterable[str] = (),
        expected: int | None = None,
    ) -> Books:
        """Books from a publisher record, the ledger file and the broker's view."""
        return cls(
            set(published),
            Counter(c.mid for c in read_ledger(ledger)),
            dead,
            queued,
            set(guilty),
            expected,
        )

    @property
    def lost(self) -> set[str]:
        """published − acked − dead − still queued."""
        return self.published - set(self.completions) - set(self.dead) - self.queued

    @property
    def lost_count(self) -> int:
        """How many are lost; with only the broker's count of publishes (`expected`),
        that count minus every message accounted for."""
        n = len(self.lost)
        if self.expected is not None:
            seen = self.published | set(self.completions) | set(self.dead) | self.queued
            n = max(n, self.expected - len(seen))
        return n

    @property
    def duplicated(self) -> set[str]:
        """Messages completed more than once."""
        return {m for m, k in self.completions.items() if k > 1}

    @property
    def duplicates(self) -> int:
        """Completions beyond the first."""
        return sum(k - 1 for k in self.completions.values())

    @property
    def innocent_dead(self) -> dict[str, str]:
        """Dead-lettered messages that did nothing to deserve it."""
        return {m: r for m, r in self.dead.items() if m not in self.guilty}

    def check(
        self, in_flight: set[str] | None, procs: Procs | None = None, *, acked: int | None = None
    ) -> None:
        """The invariants: nothing lost, no innocent dead-lettered, duplicates only of
        what was in flight at a fault (`in_flight`; None: no bound given), no process
        crashed or wedged, and the broker's acked counter (`acked`) agrees with the
        ledger about the messages that are gone."""
        assert not self.lost, f"{len(self.lost)} lost, e.g. {sorted(self.lost)[:5]}"
        assert self.lost_count == 0, (
            f"{self.lost_count} lost: the broker accepted "
            f"{self.expected}, not all are acked, dead or queued"
        )
        assert not self.innocent_dead, (
            f"innocent messages dead-lettered: "
            f"{dict(list(self.innocent_dead.items())[:5])} ({len(self.innocent_dead)})"
        )
        if in_flight is not None:
            extra = self.duplicated - in_flight - self.guilty
            assert not extra, (
                f"{len(extra)} handled twice without being in flight at a "
                f"fault (of {self.duplicates} duplicates; {len(in_flight)} "
                f"in flight): e.g. {sorted(extra)[:5]}"
            )
        if procs is not None:
            problems = procs.problems()
            assert not problems, "\n".join(problems)
        if acked is not None:
            gone = (set(self.completions) & self.published) - set(self.dead) - self.queued
            assert acked == len(gone), f"the broker counts {acked} acked, the ledger {len(gone)}"


@dataclass
class Row:
    """One scenario's measured figures."""

    scenario: str
    runs: int = 0  # faults injected (or runs made)
    lost: int | None = None
    duplicates: int | None = None
    recover_s: float | None = None  # worst time from a fault to recovery (see the test)
    seconds: float = 0.0
    outcome: str = "?"

    def note(self, books: Books, recover_s: float | None = None, runs: int | None = None) -> None:
        """Take the figures from the books (before they are checked)."""
        self.lost = books.lost_count
        self.duplicates = books.duplicates
        if recover_s is not None:
            self.recover_s = recover_s
        if runs is not None:
            self.runs = runs


def format_table(rows: list[Row]) -> str:
    """The chaos table as text."""
    head = ("scenario", "outcome", "runs", "lost", "dups", "recover s", "took s")
    body = [
        (
            r.scenario,
            r.outcome,
            str(r.runs),
            _n(r.lost),
            _n(r.duplicates),
            "-" if r.recover_s is None else f"{r.recover_s:.2f}",
            f"{r.seconds:.1f}",
        )
        for r in rows
    ]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
    lines = [
        "  ".join(x.ljust(w) for x, w in zip(line, widths, strict=True)).rstrip()
        for line in (head, *body)
    ]
    total = sum(r.seconds for r in rows)
    return "\n".join([*lines, f"{len(rows)} scenarios, {total:.1f} s in scenarios", LEGEND])


LEGEND = (
    "runs: faults injected (kills, restarts, bad entries, hostile or blocking "
    "handlers, signals); dups: completions beyond the first; recover s: the worst "
    "time from a fault until what was in flight then is done and work flows again "
    "(a signal: until the process exited; a bad entry or poison text: until "
    "dead-lettered; the loop-blocking handler: the whole demo run)"
)


def _n(v: int | None) -> str:
    return "-" if v is None else str(v)


def dump_json(path: Path, rows: list[Row]) -> None:
    """The table as JSON (for the closing note)."""
    path.write_text(json.dumps([r.__dict__ for r in rows], indent=2) + "\n")
