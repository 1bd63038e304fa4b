"""Exceptions carry fields tests can check and messages that say what to do."""

from __future__ import annotations

import json

from lilya import status
from lilya.exceptions import (
    HTTPException,
    ImproperlyConfigured,
    InvalidJSONError,
    NoMatchFound,
    WebSocketException,
    WebSocketFrameError,
    WebSocketPeerError,
    WebSocketRuntimeError,
)


def test_websocket_runtime_error_is_a_runtime_error_with_fields() -> None:
    exc = WebSocketRuntimeError("bad", state="CONNECTING", message_type="websocket.send")
    assert isinstance(exc, RuntimeError)
    assert (str(exc), exc.state, exc.message_type) == ("bad", "CONNECTING", "websocket.send")


def test_frame_error_names_both_frame_kinds_and_the_way_out() -> None:
    exc = WebSocketFrameError("text", "bytes")
    assert isinstance(exc, WebSocketPeerError)
    assert str(exc) == (
        "Expected a text frame but the client sent a bytes frame; "
        "use receive_bytes() or receive() to accept bytes frames."
    )


def test_the_peers_bad_data_is_not_an_api_misuse_and_carries_its_close_code() -> None:
    frame = WebSocketFrameError("bytes", "text")
    invalid = InvalidJSONError("Expecting value", "x", 0, mode="binary")
    for exc in (frame, invalid):
        assert isinstance(exc, WebSocketPeerError)
        assert isinstance(exc, ValueError)
        assert not isinstance(exc, WebSocketRuntimeError)
        assert not hasattr(exc, "state")  # no state of its own making
    assert frame.close_code == status.WS_1003_UNSUPPORTED_DATA
    assert invalid.close_code == status.WS_1007_INVALID_FRAME_PAYLOAD_DATA
    assert WebSocketPeerError.close_code == status.WS_1008_POLICY_VIOLATION


def test_invalid_json_error_is_a_json_decode_error() -> None:
    exc = InvalidJSONError("Expecting value", "x", 0, mode="text")
    assert isinstance(exc, json.JSONDecodeError)
    assert exc.mode == "text"
    assert str(exc).startswith("Received invalid JSON in a text frame: Expecting value")


def test_websocket_exception_keeps_code_and_reason() -> None:
    exc = WebSocketException(status.WS_1008_POLICY_VIOLATION)
    assert (exc.code, exc.reason) == (1008, "")
    exc = WebSocketException(4001, "bye")
    assert str(exc) == "4001: bye"
    assert repr(exc) == "WebSocketException(code=4001, reason='bye')"


def test_http_exception_defaults_its_detail_to_the_reason_phrase() -> None:
    exc = HTTPException(404)
    assert (exc.status_code, exc.detail, exc.headers) == (404, "Not Found", None)
    assert str(exc) == "404: Not Found"
    assert repr(exc) == "HTTPException(status_code=404, detail='Not Found')"
    exc = HTTPException(401, "who?", headers={"www-authenticate": "Bearer"}, code="E1")
    assert exc.headers == {"www-authenticate": "Bearer"}
    assert exc.extra == {"code": "E1"}


def test_no_match_found_names_the_route_and_params() -> None:
    exc = NoMatchFound("chat", {"room": "a", "id": 1})
    assert isinstance(exc, LookupError)
    assert 'name "chat" and params "id, room"' in str(exc)
    assert (exc.name, exc.path_params) == ("chat", {"room": "a", "id": 1})


def test_improperly_configured_is_an_exception() -> None:
    assert issubclass(ImproperlyConfigured, Exception)


def test_status_reason_phrases_and_close_codes() -> None:
    assert status.reason_phrase(403) == "Forbidden"
    assert status.reason_phrase(599) == ""
    assert status.WS_1009_MESSAGE_TOO_BIG == 1009
    assert status.WS_1015_TLS_HANDSHAKE == 1015
    assert set(status.__all__) <= set(dir(status))


def test_fit_reason_cuts_long_reasons_to_a_close_frame_and_marks_the_cut() -> None:
    from lilya._close import MAX_REASON_BYTES, fit_reason

    assert fit_reason("short") == "short"
    cut = fit_reason("é" * 100)
    assert len(cut.encode()) <= MAX_REASON_BYTES
    assert cut.endswith("...")
