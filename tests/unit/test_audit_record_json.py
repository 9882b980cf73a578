"""A bulk append builds each event's hashed JSON from the payload's JSON without parsing it
again; the text must be the one verification computes from the stored row."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from okeguard.audit.records import (
    RecordFields,
    canonical_json,
    parsed_record_json,
    record_json,
    string_keys,
)

_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text
)
_payloads = st.dictionaries(
    _text,
    st.recursive(
        _scalars,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.tuples(inner, inner)
            | st.dictionaries(_text, inner, max_size=3)
        ),
        max_leaves=8,
    ),
    max_size=6,
)


@settings(max_examples=400, deadline=None)
@given(payload=_payloads, actor=_text, action=_text, subject_id=_text)
def test_the_record_built_from_the_payload_s_json_is_the_parsed_one(
    payload: dict[str, Any], actor: str, action: str, subject_id: str
) -> None:
    assert string_keys(payload)
    stamp = "2026-12-05T10:00:00.000001+00:00"
    fields = RecordFields(7, stamp, actor, action, "finding", subject_id, canonical_json(payload))
    assert record_json(fields) == parsed_record_json(fields)


def test_a_payload_with_keys_that_are_not_strings_takes_the_parsed_way() -> None:
    # 10 sorts before 9 as a number but after it as the string a stored payload reads back as
    payload = {"n": {10: "a", 9: "b"}}
    assert not string_keys(payload)
    assert not string_keys({"x": [{"y": 1}, {True: 2}]})
    assert string_keys({"x": [{"y": 1}, ("z", {"w": None})]})
    stamp = "2026-12-05T10:00:00.000000+00:00"
    fields = RecordFields(1, stamp, "a", "b", "c", "d", canonical_json(payload))
    assert record_json(fields) != parsed_record_json(fields)
