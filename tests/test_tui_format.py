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
