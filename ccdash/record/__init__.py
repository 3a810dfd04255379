"""Record and replay: a run as a compact, append-only stream, read back for the
dashboard's replay, the report and the timeline plot.

Reads snapshots and events through the engine's public API only; the engine
never imports this package. Plotting (matplotlib) is imported only by
`ccdash.record.plot`, and only when a plot is asked for.
"""

from ccdash.record.reader import Recording, RecordingError, parse_recording, read_recording
from ccdash.record.writer import FORMAT, VERSION, Recorder

__all__ = [
    "FORMAT",
    "VERSION",
    "Recorder",
    "Recording",
    "RecordingError",
    "parse_recording",
    "read_recording",
]
