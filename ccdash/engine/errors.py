"""How a handler's failure is told: the error text kept with a nack and in the DLQ."""

from __future__ import annotations


def describe_error(exc: BaseException) -> str:
    """`TypeName: message`, bounded, for nack reasons and the DLQ."""
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not turn a handler failure into a crash
        message = "<str() of this exception failed>"
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text if len(text) <= 500 else text[:497] + "..."
