"""How a handler's failure is told: the error text kept with a nack and in the DLQ."""

from __future__ import annotations

from ccdash.interrupts import is_stop_request


def describe_error(exc: BaseException) -> str:
    """`TypeName: message`, bounded, for nack reasons and the DLQ."""
    try:
        message = str(exc)
    except BaseException as raised:  # a broken __str__ (even one raising SystemExit or a
        if isinstance(raised, KeyboardInterrupt) and is_stop_request(raised):  # cancel) must
            raise  # not turn a handler failure into a crash; a real Ctrl-C still stops
        message = "<str() of this exception failed>"
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text if len(text) <= 500 else text[:497] + "..."
