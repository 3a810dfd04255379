"""The body codec: a payload to the bytes or JSON text a broker stores, and back.

Bytes stay bytes; anything else becomes compact JSON (never a Python object format). The JSON paths
skip the per-call setup of `json.dumps`/`json.loads`: they run once per message.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable
from typing import Any

from ccdash.strict_json import finite, not_a_number

# The C encoder json.dumps itself uses (None without the accelerator); typeshed omits it.
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_encode_str = json.encoder.encode_basestring_ascii
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_DECODER = json.JSONDecoder()
# For bytes from a store (a foreign writer may have put them there): NaN, Infinity and
# numbers past a float's range are not JSON ccdash writes (its encoder refuses them),
# so they do not decode. Integers of any size do: ccdash writes those. The hooks run
# only for such tokens and for floats.
_STORED = json.JSONDecoder(parse_float=finite, parse_constant=not_a_number)
# The decoder's scanner, for our own text (typeshed does not list the attribute).
_scan_once: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]


def _not_json(obj: Any) -> Any:
    raise TypeError(f"Object of type {obj.__class__.__name__} is not JSON serializable")


def encode_json(body: Any) -> str:
    """`json.dumps(body, separators=(",", ":"), allow_nan=False)`, same text and same
    errors, without building a JSONEncoder per call (that costs as much as the encoding).
    The C encoder is made per call: its circular-reference markers must not be shared
    (an error leaves them dirty; two threads would see each other's)."""
    if _c_make_encoder is None:  # an interpreter without the C accelerator
        return _ENCODER.encode(body)
    if type(body) is str:
        return _encode_str(body)
    return "".join(
        _c_make_encoder({}, _not_json, _encode_str, None, ":", ",", False, False, False)(body, 0)
    )


def decode_json_text(text: str) -> Any:
    """A value back from the text `encode_json` made (and only that: it skips the
    checks for leading and trailing garbage that foreign input needs)."""
    return _scan_once(text, 0)[0]


def decode_json(data: bytes) -> Any:
    """`json.loads(data)` (same values, same errors) without its per-call encoding
    detection when the bytes are UTF-8, as every ccdash writer makes them; but NaN,
    Infinity and a number past a float's range are a ValueError (see `_STORED`)."""
    try:
        return _STORED.decode(data.decode())
    except ValueError:  # not plain UTF-8 (a BOM, UTF-16, or bad JSON): the general path
        return json.loads(data, parse_float=finite, parse_constant=not_a_number)


class PayloadTooLarge(ValueError):
    """A message body over the configured maximum (`max_body_bytes`)."""


def encode_body(body: Any, max_bytes: int | None = None) -> tuple[bytes, bool]:
    """Payload to stored bytes: bytes stay bytes, anything else becomes JSON.

    TypeError (with the reason) for a body that cannot be encoded: not JSON, a
    cycle, nested too deeply. PayloadTooLarge when the bytes exceed `max_bytes`.
    """
    if type(body) is bytes:  # the common case first: no copy, no isinstance
        data, is_json = body, False
    elif isinstance(body, (bytes, bytearray, memoryview)):  # a tuple is faster
        data, is_json = bytes(body), False
    else:
        data, is_json = encode_json_body(body).encode(), True
    if max_bytes is not None and len(data) > max_bytes:
        raise PayloadTooLarge(too_large(len(data), max_bytes))
    return data, is_json


def encode_json_body(body: Any, max_bytes: int | None = None) -> str:
    """A non-bytes payload as JSON text, or the payload error (TypeError with the
    reason; PayloadTooLarge when its UTF-8 form is over `max_bytes`)."""
    try:
        text = encode_json(body)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"payload must be bytes or JSON-serialisable: {exc}") from None
    except RecursionError:
        raise TypeError(
            "payload must be bytes or JSON-serialisable: nested too deeply to encode"
        ) from None
    # Counting the UTF-8 bytes costs an encode: only when the characters could be over.
    if max_bytes is not None and len(text) * 4 > max_bytes:
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > max_bytes:
            raise PayloadTooLarge(too_large(size, max_bytes))
    return text


def too_large(size: int, max_bytes: int) -> str:
    """The PayloadTooLarge message."""
    return f"payload is {size} bytes, over the limit of {max_bytes} (max_body_bytes)"


# How an in-process broker keeps a body (`keep_body`) so every delivery gets a fresh
# value equal to the published one's JSON round trip, without a round trip where a
# copy is the same thing.
KEPT_AS_IS = 0  # bytes, or an immutable JSON scalar: delivered as kept
KEPT_FLAT = 1  # a dict of str keys to JSON scalars: a copy kept, copied per delivery
KEPT_TEXT = 2  # anything else: its JSON text kept, decoded per delivery
# A dict kept flat has str keys and JSON scalar values only, ints within +-INT_CAP
# (beyond, the text path decides: json refuses > 4300 digits), finite floats, and
# 12 * its characters + SCALAR_BYTES * its length + 2 <= max_bytes (at most 12 characters
# of ASCII-escaped JSON per character of a str; room for a key's quotes and separators
# and a non-str scalar's text): its round trip is a copy (same keys, same order,
# equal values).
INT_CAP = 10**18
NEG_INT_CAP = -INT_CAP  # a constant: `-INT_CAP` would build a new int per check
SCALAR_BYTES = 32


def keep_body(body: Any, max_bytes: int) -> tuple[Any, int]:
    """A published body as an in-process broker keeps it, and how (`KEPT_*`); see
    `kept_body`. Errors as `encode_body`: TypeError for a body JSON cannot encode,
    PayloadTooLarge over `max_bytes`. Bytes-likes become bytes (a copy). A flat dict
    is kept as a copy (`KEPT_FLAT`) by the caller's own check, inline on its publish
    path (the memory broker's `publish_nowait`, within the limits above); here every
    dict takes the text path, which decides exactly."""
    kind = type(body)
    if kind is bytes:
        if len(body) > max_bytes:
            raise PayloadTooLarge(too_large(len(body), max_bytes))
        return body, KEPT_AS_IS
    elif kind is str:
        if 12 * len(body) + 2 <= max_bytes:
            return body, KEPT_AS_IS
    elif kind is int or kind is bool or body is None:
        if kind is not int or NEG_INT_CAP < body < INT_CAP:
            return body, KEPT_AS_IS
    elif kind is float:
        if body - body == 0.0:
            return body, KEPT_AS_IS
    elif isinstance(body, (bytes, bytearray, memoryview)):  # a tuple: faster than X | Y
        data = bytes(body)
        if len(data) > max_bytes:
            raise PayloadTooLarge(too_large(len(data), max_bytes))
        return data, KEPT_AS_IS
    return encode_json_body(body, max_bytes), KEPT_TEXT


def kept_body(data: Any, how: int) -> Any:
    """A fresh value of a body `keep_body` kept (the per-delivery path inlines it)."""
    if how == KEPT_AS_IS:
        return data
    return data.copy() if how == KEPT_FLAT else decode_json_text(data)


def decode_body(data: bytes, is_json: bool) -> Any:
    """Stored bytes back to the published value."""
    return decode_json(data) if is_json else data
