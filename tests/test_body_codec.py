"""The body codec: json.dumps/json.loads semantics exactly, at a fraction of the cost."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccdash.brokers.codec import decode_json, decode_json_text, encode_body, encode_json
from ccdash.brokers.memory import MemoryBroker

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
