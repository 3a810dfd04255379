"""The dashboard's one formatting module (`ccdash.tui.format`)."""

from __future__ import annotations

from ccdash.tui import format as fmt


def test_a_time_before_the_dashboard_started_reads_as_before() -> None:
    """A dead letter or delivery from before this dashboard started (a shared queue's past)
    shows how long before (t-...); it read t+0.0s, as if it had just happened."""
    assert fmt.clock_offset(1.5) == "t+1.5s"
    assert fmt.clock_offset(185) == "t+3m05s"
    assert fmt.clock_offset(-0.01) == "t+0.0s"  # clock jitter around the start
    assert fmt.clock_offset(-2.5) == "t-2.5s"
    assert fmt.clock_offset(-1800) == "t-30m00s"
    assert fmt.clock_offset(float("nan")) == "t+0.0s"


def test_a_consumer_state_from_another_worker_is_shown_inert() -> None:
    """On a Redis fleet the Consumers pane shows other workers' consumer states as their
    presence records say: a foreign record's state with an OSC 52 sequence or a bidi
    override reached the terminal raw (Rich strips only BEL, BS, VT, FF and CR)."""
    from textual.theme import Theme

    palette = fmt.Palette.from_theme(Theme(name="t", primary="#4C9BE8"))
    hostile = "idle\x1b]52;c;ZXZpbA==\x07\u202e\x9b2J"
    for kwargs in ({}, {"hung": True}, {"slow": 2.0}, {"faded": True}):
        shown = fmt.state(palette, hostile, **kwargs).plain
        assert not any(ch in shown for ch in "\x1b\x07\u202e\x9b"), shown
    assert "\\x1b]52" in fmt.state(palette, hostile).plain
    assert fmt.state(palette, "processing").plain == "processing"
