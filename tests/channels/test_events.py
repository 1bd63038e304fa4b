"""Event: what a subscription delivers, and the JSON text it keeps for relays."""

from __future__ import annotations

import dataclasses
import json

import pytest

from lilya.channels import Event


def test_an_events_json_is_made_once_and_is_the_stdlib_compact_form() -> None:
    data = {"text": "héllo", "n": [1e16, 0.00001]}
    event = Event("c", 1, "e", data)
    text = event._json_text()
    assert text == json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    assert event._json_text() is text


def test_the_cached_json_is_not_part_of_what_an_event_is() -> None:
    used, fresh = Event("c", 1, "e", {"a": 1}), Event("c", 1, "e", {"a": 1})
    used._json_text()
    assert used == fresh
    assert (
        repr(used)
        == repr(fresh)
        == "Event(channel='c', offset=1, epoch='e', data={'a': 1}, type='message')"
    )
    assert hash(Event("c", 1, "e", "x")) == hash(Event("c", 1, "e", "x"))
    # A changed copy does not inherit text made from other data.
    assert dataclasses.replace(used, data=[2])._json_text() == "[2]"


def test_an_event_stays_read_only() -> None:
    event = Event("c", 1, "e", {"a": 1})
    with pytest.raises(dataclasses.FrozenInstanceError):
        event._json = "{}"  # type: ignore[misc]  # proving the frozen dataclass refuses it


def test_data_that_is_not_json_is_refused_each_time_and_nothing_is_cached() -> None:
    event = Event("c", 1, "e", object())
    for _ in range(2):
        with pytest.raises(TypeError, match="not JSON serializable"):
            event._json_text()
    assert event._json is None


def test_a_published_integer_beyond_64_bits_comes_back_exact() -> None:
    from lilya.channels.events import decode, encode

    assert decode(*encode(2**70)) == 2**70
    assert decode(*encode({"id": -(2**65)})) == {"id": -(2**65)}
