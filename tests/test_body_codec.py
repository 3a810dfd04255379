"""The body codec: json.dumps/json.loads semantics exactly, at a fraction of the cost."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccdash.brokers.codec import decode_json, decode_json_text, encode_body, encode_json
from ccdash.brokers.memory import MemoryBroker
from ccdash.brokers.types import DEFAULT_MAX_BODY, QueueConfig

_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text())
_keys = st.one_of(
    st.text(), st.integers(), st.booleans(), st.none(), st.floats(), st.tuples(st.integers())
)
values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(_keys, inner, max_size=4),
    ),
    max_leaves=12,
)


def _outcome(fn: Any, value: Any) -> Any:
    try:
        return ("ok", fn(value))
    except Exception as exc:  # the error is the result compared
        return (type(exc), str(exc))


@settings(max_examples=300, deadline=None)
@given(values)
def test_encode_json_matches_json_dumps_values_and_errors(value: Any) -> None:
    """encode_json gives json.dumps' compact, NaN-refusing text, or the same error."""

    def dumps(v: Any) -> str:
        return json.dumps(v, separators=(",", ":"), allow_nan=False)

    expected = _outcome(dumps, value)
    assert _outcome(encode_json, value) == expected
    if expected[0] == "ok":
        text = expected[1]
        assert decode_json_text(text) == json.loads(text)
        assert decode_json(text.encode()) == json.loads(text.encode())


def test_encode_json_refuses_cycles_and_recovers() -> None:
    """A circular body is refused as json.dumps refuses it, and the next encode works."""
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(TypeError, match="Circular reference detected"):
        encode_body(loop)
    assert encode_json({"a": [loop["self"] is loop]}) == '{"a":[true]}'


@pytest.mark.parametrize(
    "raw",
    [b'\xef\xbb\xbf{"a":1}', '{"a":1}'.encode("utf-16"), b'{"a":1} x', b"nope", b'"\xed\xa0\x80"'],
)
def test_decode_json_of_foreign_bytes_matches_json_loads(raw: bytes) -> None:
    """Bytes no ccdash writer makes (a BOM, UTF-16, garbage) decode or fail as json.loads does."""
    assert _outcome(decode_json, raw) == _outcome(json.loads, raw)


async def test_memory_broker_builds_no_encoder_and_detects_no_encoding_per_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Publishing and receiving JSON bodies builds no JSONEncoder and runs no encoding
    detection per message (each cost as much as the encoding itself)."""
    built, detected = [0], [0]
    real_detect = json.detect_encoding

    class CountingEncoder(json.JSONEncoder):
        def __init__(self, *a: Any, **kw: Any) -> None:
            built[0] += 1
            super().__init__(*a, **kw)

    def counting_detect(b: bytes) -> str:
        detected[0] += 1
        return real_detect(b)

    monkeypatch.setattr(json, "JSONEncoder", CountingEncoder)
    monkeypatch.setattr(json, "detect_encoding", counting_detect)
    broker = MemoryBroker()
    for i in range(50):
        broker.publish_nowait({"id": i, "body": "x" * 100})
    got = broker.receive_nowait(["c"] * 50)
    assert [d.body["id"] for d in got] == list(range(50))
    assert (built[0], detected[0]) == (0, 0)


async def test_memory_body_is_a_snapshot_of_the_published_value() -> None:
    """Changes the publisher makes after publishing are never seen, and each delivery
    decodes a value of its own."""
    broker = MemoryBroker()
    body: dict[str | int, Any] = {"items": [1, 2], "t": (3, 4), 5: "five"}
    broker.publish_nowait(body)
    body["items"].append(99)
    [d] = broker.receive_nowait(["c"])
    assert d.body == {"items": [1, 2], "t": [3, 4], "5": "five"}
    d.body["items"].append(7)
    await broker.nack(d.receipt, "again", delay=0.0)
    [d2] = broker.receive_nowait(["c"])
    assert d2.body["items"] == [1, 2]


_flat = st.dictionaries(
    st.one_of(st.text(max_size=8), st.integers(), st.booleans()),
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=10**17, max_value=10**5000),
        st.floats(),
        st.text(),
    ),
    max_size=5,
)


def _memory_round_trip(value: Any, max_bytes: int) -> Any:
    broker = MemoryBroker(QueueConfig(max_body_bytes=max_bytes))
    broker.publish_nowait(value)
    [d] = broker.receive_nowait(["c"])
    return d.body


@settings(max_examples=400, deadline=None)
@given(st.one_of(values, _flat), st.sampled_from([40, 300, DEFAULT_MAX_BODY]))
def test_memory_delivers_the_json_round_trip_or_refuses_as_encode_body(
    value: Any, max_bytes: int
) -> None:
    """Whatever a body is (flat dicts and scalars are copied, not encoded), a delivery
    is its JSON round trip, of the same type, or publishing fails as encode_body does."""

    def round_trip(v: Any) -> Any:
        encode_body(v, max_bytes)
        return json.loads(json.dumps(v, separators=(",", ":"), allow_nan=False))

    expected = _outcome(round_trip, value)
    got = _outcome(lambda v: _memory_round_trip(v, max_bytes), value)
    assert got == expected
    if got[0] == "ok":
        assert repr(got[1]) == repr(expected[1])  # same types (1 is not 1.0 or True)


async def test_memory_flat_dict_body_is_fresh_per_delivery() -> None:
    """A flat dict body (kept as a copy) is a new dict for every delivery, and neither
    the publisher's nor a handler's changes reach another delivery."""
    broker = MemoryBroker()
    body = {"id": 1, "body": "x"}
    broker.publish_nowait(body)
    body["id"] = 2
    [d] = broker.receive_nowait(["c"])
    assert d.body == {"id": 1, "body": "x"} and d.body is not body
    d.body["id"] = 3
    await broker.nack(d.receipt, "again", delay=0.0)
    [d2] = broker.receive_nowait(["c"])
    assert d2.body == {"id": 1, "body": "x"} and d2.body is not d.body


class _Key(str):
    """A str subclass: JSON turns it into a plain str, so a copy would not do."""


@pytest.mark.parametrize(
    "value",
    [
        {"n": n}
        for n in (2**30 - 1, 2**30, -(2**30) + 1, -(2**30), 10**18 - 1, 10**18, -(10**18) + 1)
    ]
    + [
        {"n": -(10**18)},
        {"n": 10**4301},
        {"f": float("inf")},
        {"f": -0.0},
        {"b": True, "z": None},
        {_Key("k"): 1},
        {"s": _Key("v")},
        {"t": (1,)},
        {1: "int key"},
    ],
)
def test_memory_flat_check_edges_match_the_json_round_trip(value: Any) -> None:
    """The memory broker's inline flat-dict check at its edges (the one-digit int fast
    path, INT_CAP, floats, str subclasses, non-str keys): a delivery is the JSON round
    trip, of the same types, or publishing fails as encode_body does."""

    def round_trip(v: Any) -> Any:
        encode_body(v, DEFAULT_MAX_BODY)
        return json.loads(json.dumps(v, separators=(",", ":"), allow_nan=False))

    expected = _outcome(round_trip, value)
    got = _outcome(lambda v: _memory_round_trip(v, DEFAULT_MAX_BODY), value)
    assert got == expected
    if got[0] == "ok":
        assert repr(got[1]) == repr(expected[1])
        assert {type(k) for k in got[1]} == {str}
